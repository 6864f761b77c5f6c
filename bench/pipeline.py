"""Benchmark the whole pipeline: N messages over C concurrent SMTP sessions.

It runs the configuration a user runs: the real ``deploy/supervisord.conf`` as
shipped (INFO logs through supervisord, the ``metrics`` and ``web`` programs)
in a scratch copy of the repository layout, changing only what a load on one
host needs, each printed with the figures (:meth:`Config.changes`): Postfix's
smtp-sink instead of the ``log`` program as the smart host (writing the
replies on tmpfs, not on the spool's disk), ``reply_rate_limit = 0``,
``auth_results = False`` (no DNS here), the per-client session cap lifted
(every session comes from 127.0.0.1) and free ports. Other configurations are
flags (``--log-level WARNING``, ``--no-web``, ``--no-metrics``, ``--auth``,
``--sink log``, ``--sink-dir disk``, ``--routers``). Before the load it waits
until creating a file on the scratch disk is cheap again (README, "A measuring
pitfall"; ``--no-settle`` skips it). It sends the messages with smtplib
threads or Postfix's smtp-source (``--client``), waits until every reply has
arrived at the sink, and prints:

* the configuration, when the load ran and what a file creation cost just before;
* accept rate: messages per second acknowledged with 250 by the receiver;
* end-to-end rate: replies arrived at the sink per second, first send to last reply;
* latency p50/p99: from a message's 250 to its reply's file at the sink (smtplib client only);
* CPU milliseconds per message of every supervised program (its whole process
  tree, from /proc: utime+stime, plus reaped children), between the first send
  and the last reply, and the total of the pipeline's own programs; the sink
  and the load client apart; how busy the machine was, and with what else;
* Redis commands per message (``INFO commandstats``, before and after) and the
  most frequent ones; log lines per message; with ``--trace-files``, the
  spool's file system calls per message (strace; the rates of such a run are
  not figures);
* peak RSS (VmHWM) of every program's processes at the end.

    .venv/bin/python bench/pipeline.py --messages 2000 --sessions 10 --client smtp-source

bench/compare.py runs a sweep of session counts against Salmon 3.3 with the
functions here. Nothing is asserted: the figures are for the README.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
# Programs of deploy/supervisord.conf that are not the pipeline itself: the development smart host.
NOT_OURS = {"log", "sink"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def postfix_tools() -> Path:
    """The folder holding Postfix's smtp-source and smtp-sink, fetched by bench/loadtools.py the first time."""
    import loadtools  # bench/ is on sys.path: this file's folder, or put there by its importer

    return loadtools.postfix_tools()


def start_sink(queue: Path, port: int, pidfile: Path) -> subprocess.Popen[bytes]:
    """Postfix's smtp-sink on ``port``, one file per message in ``queue``/new (it writes as nobody)."""
    (queue / "new").mkdir(parents=True, exist_ok=True)
    for folder in (queue.parent, queue, queue / "new"):  # the scratch folder (mkdtemp's 0700), the Maildir
        os.chmod(folder, 0o777 if folder.name == "new" else 0o755)
    proc = subprocess.Popen([str(postfix_tools() / "smtp-sink"), "-u", "nobody", "-d", f"{queue}/new/%H%M%S.",
                             f"127.0.0.1:{port}", "256"], start_new_session=True)
    pidfile.write_text(str(proc.pid))
    return proc


#: Where a sink may write its files without touching the disk the pipeline's spool is on.
TMPFS = Path("/dev/shm")


@dataclass(frozen=True)
class Config:
    """What runs: deploy/supervisord.conf as shipped unless a field says otherwise.

    The defaults are the shipped configuration with only what a one-host load needs changed
    (:meth:`changes` names each); the other fields are the flags of ``main`` (:meth:`departures`).
    """

    routers: int = 2  # router workers (numprocs; shipped: 2)
    log_level: str = "INFO"  # LAMSON_LOG_LEVEL (shipped: unset, so INFO)
    metrics: bool = True  # [program:metrics] kept
    web: bool = True  # [program:web] kept
    auth: bool = False  # SPF/DKIM/DMARC lookups (shipped: on; this machine has no DNS)
    sink: str = "smtp-sink"  # the smart host: Postfix's smtp-sink instead of [program:log], or "log" (shipped)
    sink_dir: str = "tmpfs"  # where smtp-sink writes the replies: "tmpfs" (/dev/shm) or "disk" (the scratch folder)

    def changes(self) -> list[str]:
        """The changes to the shipped files every load needs on one host (printed with every figure)."""
        found = ["reply_rate_limit = 0 (a load is not a mail loop)",
                 "max_connections = max_connections_per_ip = 1000 (every session comes from 127.0.0.1)",
                 "free ports for redis, receiver, relay, metrics, web"]
        if not self.auth:
            found.insert(1, "auth_results = False (no DNS on this machine)")
        if self.sink == "smtp-sink":
            found.insert(0, f"[program:log] replaced by Postfix's smtp-sink (replies to files on {self.sink_dir})")
        return found

    def departures(self) -> list[str]:
        """Where this run differs from the shipped configuration beyond :meth:`changes` (the flags)."""
        found = []
        if self.routers != 2:
            found.append(f"routers={self.routers}")
        if self.log_level.upper() != "INFO":
            found.append(f"log level {self.log_level.upper()}")
        if not self.metrics:
            found.append("no metrics program")
        if not self.web:
            found.append("no web program")
        if self.auth:
            found.append("auth_results on (DNS lookups)")
        return found

    def label(self) -> str:
        """A short name for tables and charts: "shipped" or the departures."""
        return ", ".join(self.departures()) or "shipped"

    def describe(self) -> str:
        """The configuration as printed above every figure."""
        return (f"configuration: {self.label()} (deploy/supervisord.conf; for a one-host load: "
                + "; ".join(self.changes()) + ")")


def replies(root: Path, sink: str | Config) -> Path:
    """The Maildir the smart host writes the replies into: the logging server's run/queue, or, for smtp-sink
    (which writes as nobody), a folder beside run/, which the programs keep private (0700); with
    ``sink_dir="tmpfs"`` that folder is a link to one on /dev/shm (see :func:`sink_folder`)."""
    name = sink.sink if isinstance(sink, Config) else sink
    return root / "sink" if name == "smtp-sink" else root / "run" / "queue"


def sink_folder(root: Path, config: Config) -> Path:
    """Make the folder smtp-sink writes into and return it: ``root``/sink, on tmpfs unless ``sink_dir`` is disk.

    On tmpfs the sink's thousands of file creations (and their deletion afterwards) never touch the
    disk the spool is on: on this machine's ext4 without a journal a creation right after many
    deletions costs up to 0.9 ms of CPU (README, "A measuring pitfall"), which the next point would
    pay in the spool. The replies are still files, so they can be counted and timed."""
    folder = root / "sink"
    if config.sink_dir == "tmpfs" and TMPFS.is_dir():
        target = Path(tempfile.mkdtemp(prefix="lamson-sink-", dir=TMPFS))
        folder.symlink_to(target)
    return folder


def remove_sink_folder(root: Path) -> None:
    """Delete the tmpfs folder a ``root``/sink link points to (the scratch folder itself is the caller's)."""
    link = root / "sink"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)


def drop_program(text: str, name: str) -> str:
    """``text`` (a supervisord.conf) without the section ``[program:name]`` and the comment lines just above it."""
    lines = text.splitlines(keepends=True)
    begin = next((i for i, line in enumerate(lines) if line.strip() == f"[program:{name}]"), None)
    if begin is None:
        return text
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    while end > begin + 1 and (lines[end - 1].startswith(";") or not lines[end - 1].strip()):
        end -= 1  # the next section's comment block belongs to the next section
    while begin > 0 and lines[begin - 1].startswith(";"):
        begin -= 1
    return "".join(lines[:begin] + lines[end:])


def creation_cost(folder: Path, files: int = 200) -> float:
    """CPU microseconds to create one empty file in ``folder`` (the files stay: deleting them would
    make the state this measures). Tens of µs on a quiet disk; hundreds right after thousands of
    deletions on ext4 without a journal (README, "A measuring pitfall")."""
    folder.mkdir(parents=True, exist_ok=True)
    before = time.process_time()
    for i in range(files):
        os.close(os.open(folder / f"p{i}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    return (time.process_time() - before) * 1e6 / files


def settle_disk(root: Path, limit_us: float = 60.0, wait: float = 90.0) -> tuple[float, float]:
    """Wait (at most ``wait`` seconds) until creating a file in ``root``'s file system costs at most
    ``limit_us`` µs of CPU, so that a point does not measure the recently-deleted-inode state another
    run left behind. Returns (the last cost measured, seconds waited)."""
    began = time.monotonic()
    probe = 0
    while True:
        cost = creation_cost(root / "probe" / str(probe))
        probe += 1
        waited = time.monotonic() - began
        if cost <= limit_us or waited >= wait:
            return cost, waited
        time.sleep(5)


def start(root: Path, routers: int | Config = 2, sink: str = "", auth: bool = False
          ) -> tuple[dict[str, str], dict[str, int]]:
    """Start ``config`` (or the shipped configuration with ``routers``/``sink``/``auth``, the older
    call) in ``root``: a scratch copy of deploy/ and examples/; returns the environment and the ports."""
    if isinstance(routers, Config):
        config = routers
    else:
        config = Config(routers=routers, sink=sink or "smtp-sink", auth=auth)
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "run", "logs"))
    conf = root / "deploy" / "supervisord.conf"
    text = conf.read_text().replace("numprocs=2", f"numprocs={config.routers}")
    if config.sink == "smtp-sink":
        text = drop_program(text, "log")  # Postfix's smtp-sink (C) as the smart host instead
    if not config.metrics:
        text = drop_program(text, "metrics")
    if not config.web:
        text = drop_program(text, "web")
    conf.write_text(text)
    # What a load on one host needs (Config.changes prints each): the per-address reply rate limit
    # (a loop guard, docs/security.md) would park most replies of a few hundred messages a second
    # from a few addresses; every session comes from 127.0.0.1, so the per-client session limit
    # (20, a defence for the Internet) would refuse the 21st with 421; and this machine may have no
    # DNS, so SPF/DKIM/DMARC lookups would time out and be measured instead of the pipeline.
    settings = root / "examples" / "demo" / "config" / "settings.py"
    extra = "\nreply_rate_limit = 0\n" + ("" if config.auth else "auth_results = False\n")
    extra += "max_connections = 1000\nmax_connections_per_ip = 1000\n"
    settings.write_text(settings.read_text() + extra)
    (root / "run").mkdir()
    (root / "logs").mkdir()
    names = ["redis", "receiver", "relay"] + ["metrics"] * config.metrics + ["web"] * config.web
    ports = {name: free_port() for name in names}
    env = dict(os.environ)
    env.pop("LAMSON_LOG_LEVEL", None)  # the shipped level unless asked
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "LAMSON_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "LAMSON_RECEIVER_PORT": str(ports["receiver"]),
        "LAMSON_RELAY_PORT": str(ports["relay"]),
    })
    if config.metrics:
        env["LAMSON_METRICS_PORT"] = str(ports["metrics"])
    if config.web:
        env["LAMSON_WEB_PORT"] = str(ports["web"])
    if config.log_level.upper() != "INFO":
        env["LAMSON_LOG_LEVEL"] = config.log_level.upper()
    try:
        if config.sink == "smtp-sink":
            start_sink(sink_folder(root, config), ports["relay"], root / "run" / "smtp-sink.pid")
        subprocess.run([str(BIN / "supervisord"), "-c", str(conf)], cwd=root, env=env, check=True)
        for port in ports.values():
            wait_port(port)
    except BaseException:
        stop(root, env)  # whatever did start: the caller gets no env to stop it with
        raise
    time.sleep(2)  # workers import the application
    return env, ports


def stop(root: Path, env: dict[str, str]) -> None:
    conf = root / "deploy" / "supervisord.conf"
    subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), "shutdown"], env=env, capture_output=True)
    pidfile = root / "run" / "supervisord.pid"
    deadline = time.monotonic() + 60
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    kill_sink(root / "run" / "smtp-sink.pid")
    remove_sink_folder(root)


def kill_sink(pidfile: Path) -> None:
    """End the smtp-sink started by :func:`start_sink` (its own session: the group is only it)."""
    if pidfile.exists():
        try:
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        pidfile.unlink()


# --- what the processes cost -------------------------------------------------------------------------

def programs(root: Path, env: dict[str, str]) -> dict[str, int]:
    """Name -> pid of every supervised program, supervisord itself and the smtp-sink if one runs."""
    conf = root / "deploy" / "supervisord.conf"
    out = subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), "status"], env=env,
                         capture_output=True, text=True).stdout
    pids = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+RUNNING\s+pid (\d+)", line)
        if m:
            pids[m.group(1).split(":")[-1]] = int(m.group(2))
    pids["supervisord"] = int((root / "run" / "supervisord.pid").read_text())
    sink_pid = root / "run" / "smtp-sink.pid"
    if sink_pid.exists():
        pids["sink"] = int(sink_pid.read_text())
    return pids


def process_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, own CPU seconds, reaped children's CPU seconds) of every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        table[int(entry)] = (int(fields[1]), (utime + stime) / TICK, (cutime + cstime) / TICK)
    return table


def descendants(pid: int, table: dict[int, tuple[int, float, float]], others: set[int] | None = None) -> list[int]:
    """``pid`` and every live process below it (rq's scheduler runs in a forked child of the router
    and relay workers; a work horse would too),
    leaving out the subtrees of ``others`` (supervisord's programs are measured each on its own)."""
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in table and (p == pid or p not in (others or ())):
            found.append(p)
            todo.extend(children.get(p, []))
    return found


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each program's process tree: the root's own and its reaped
    children's, plus every live descendant's own (a descendant reaped in between moves from the
    latter to the former, so differences of two snapshots stay right)."""
    table = process_table()
    used = {}
    for name, pid in pids.items():
        tree = descendants(pid, table, set(pids.values()))
        used[name] = sum(table[p][1] for p in tree) + sum(table[p][2] for p in tree)
    return used


def peak_rss(pids: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Name -> (VmHWM of the program's process, largest VmHWM of its live child processes), in kB."""
    table = process_table()
    out = {}
    for name, pid in pids.items():
        sizes = []
        for p in descendants(pid, table, set(pids.values())):
            try:
                with open(f"/proc/{p}/status") as f:
                    m = re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M)
            except OSError:
                m = None
            sizes.append(int(m.group(1)) if m else 0)
        out[name] = (sizes[0] if sizes else 0, max(sizes[1:], default=0))
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat): other work on a
    shared machine shows as busy time that none of the measured processes used."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / TICK, sum(ticks) / TICK


def redis_client(root: Path, env: dict[str, str]) -> redis.Redis:
    """A client of the embedded Redis, with the password `lamson redis-url` adds from run/ (imported
    here: the Salmon side of bench/compare.py needs no Redis)."""
    import redis

    url = subprocess.run(["lamson", "redis-url"], cwd=root, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    return redis.Redis.from_url(url)


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls of every Redis command so far (``INFO commandstats``)."""
    stats = client.info("commandstats")
    return {key.removeprefix("cmdstat_"): value["calls"] for key, value in stats.items()}


# --- the load ----------------------------------------------------------------------------------------

def sender(port: int, ids: list[str], acked: dict[str, float], size: int, interval: float = 0.0,
           senders: int = 1, failures: list[str] | None = None, timeout: float = 120) -> None:
    filler = ("x" * 70 + "\r\n") * max(0, size // 72)
    next_send = time.monotonic()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
            for mid in ids:
                if interval:
                    next_send += interval
                    time.sleep(max(0.0, next_send - time.monotonic()))
                who = "bench@example.org" if senders <= 1 else f"bench{int(mid[1:]) % senders}@example.org"
                msg = (f"From: {who}\r\nTo: hello@test.com\r\nSubject: bench {mid}\r\n"
                       f"Message-ID: <{mid}@bench.example.org>\r\n\r\n{filler}")
                smtp.sendmail(who, ["hello@test.com"], msg)
                acked[mid] = time.time()
    except (OSError, smtplib.SMTPException) as exc:  # a collapsing server: count it, do not stop the run
        if failures is not None:
            failures.append(f"{type(exc).__name__}: {exc}")


def send_smtplib(port: int, messages: int, sessions: int, size: int, rate: float, senders: int,
                 timeout: float) -> tuple[dict[str, float], list[str]]:
    """Send over ``sessions`` smtplib threads; returns each message's 250 time and the session errors."""
    ids = [f"m{i}" for i in range(messages)]
    acked: dict[str, float] = {}
    failures: list[str] = []
    interval = sessions / rate if rate else 0.0
    threads = [threading.Thread(target=sender, daemon=True,
                                args=(port, ids[i::sessions], acked, size, interval, senders, failures,
                                      min(120.0, timeout)))
               for i in range(sessions)]
    deadline = time.monotonic() + timeout
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        failures.append(f"sessions still sending after {timeout:.0f}s")
    return acked, failures


def send_smtp_source(port: int, messages: int, sessions: int, size: int, senders: int,
                     timeout: float) -> list[str]:
    """Send with Postfix's smtp-source. It has one envelope sender per process (-f), so the sessions
    are split over min(sessions, senders) processes, each with its own sender; -d keeps each
    session's connection for all its messages, as the smtplib client does."""
    procs = max(1, min(sessions, senders))
    tool = str(postfix_tools() / "smtp-source")
    running: list[subprocess.Popen[bytes]] = []
    failures: list[str] = []
    try:
        for i in range(procs):
            n_sessions = sessions // procs + (i < sessions % procs)
            n_messages = messages // procs + (i < messages % procs)
            if not n_messages:
                continue
            running.append(subprocess.Popen(
                [tool, "-d", "-s", str(n_sessions), "-m", str(n_messages), "-l", str(size),
                 "-f", f"bench{i}@example.org", "-t", "hello@test.com", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                _, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                failures.append(f"smtp-source still sending after {timeout:.0f}s")
                break
            if proc.returncode:
                failures.append(err.decode(errors="replace").strip().splitlines()[-1] if err else
                                f"smtp-source exit {proc.returncode}")
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return failures


def arrivals(queue: Path) -> dict[str, float]:
    found = {}
    pattern = re.compile(rb"In-Reply-To: <([^@>]+)@bench")
    for entry in os.scandir(queue / "new"):
        with open(entry.path, "rb") as f:
            head = f.read(2048)
        m = pattern.search(head)
        if m:
            found[m.group(1).decode()] = entry.stat().st_mtime
    return found


def wait_replies(queue: Path, expected: int, timeout: float) -> tuple[int, float]:
    """Wait until ``expected`` replies are in ``queue``/new or ``timeout``; (count, last file's mtime)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(os.listdir(queue / "new")) < expected:
        time.sleep(0.05)
    times = [e.stat().st_mtime for e in os.scandir(queue / "new")]
    return len(times), max(times, default=time.time())


@dataclass
class Load:
    """One load on one running project, and what it cost."""

    messages: int
    sessions: int
    client: str
    accepted: int = 0
    accept_seconds: float = 0.0
    replies: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per program over the load
    client_cpu: float = 0.0
    rss: dict[str, tuple[int, int]] = field(default_factory=dict)
    redis: dict[str, int] = field(default_factory=dict)  # calls per command over the load
    machine: tuple[float, float] = (0.0, 0.0)  # busy and total CPU seconds of the machine over the load
    jobs: dict[str, int] = field(default_factory=dict)  # rq jobs done over the load, by stage
    config: str = ""  # Config.describe() of the run, or what else ran (Salmon)
    disk_us: float = 0.0  # CPU µs to create a file on the scratch disk just before the load (settle_disk)
    when: str = ""  # UTC time the load began
    log_lines: dict[str, int] = field(default_factory=dict)  # lines each log file grew by over the load
    syscalls: dict[str, int] = field(default_factory=dict)  # file system calls over the load (--trace-files)

    @property
    def rate(self) -> float:
        """Replies per second end to end: first send to last reply at the sink."""
        return self.replies / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms(self, name: str) -> float:
        return self.cpu.get(name, 0.0) * 1000 / max(1, self.replies)

    def ours_ms(self) -> float:
        """CPU ms per message of the project's own processes (not the sink, not the client)."""
        return sum(self.cpu_ms(name) for name in self.cpu if name not in NOT_OURS)


def run_load(port: int, queue: Path, pids: dict[str, int], *, messages: int, sessions: int, size: int,
             senders: int, client: str, rate: float = 0.0, timeout: float = 600, redis_conn: redis.Redis | None = None) -> Load:
    """Send ``messages`` to ``port``, wait for the replies in ``queue``, and measure the programs ``pids``."""
    load = Load(messages, sessions, client)
    baseline = len(os.listdir(queue / "new"))
    calls_before = command_calls(redis_conn) if redis_conn is not None else {}
    jobs_before = jobs_done(redis_conn) if redis_conn is not None else {}
    cpu_before = cpu_seconds(pids)
    machine_before = machine_busy()
    usage = resource.RUSAGE_CHILDREN if client == "smtp-source" else resource.RUSAGE_SELF
    client_before = resource.getrusage(usage)
    t0 = time.time()
    load.when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0))
    acked: dict[str, float] = {}
    if client == "smtp-source":
        load.failures = send_smtp_source(port, messages, sessions, size, senders, timeout)
        load.accepted = messages if not load.failures else 0
    else:
        acked, load.failures = send_smtplib(port, messages, sessions, size, rate, senders, timeout)
        load.accepted = len(acked)
    load.accept_seconds = time.time() - t0
    client_after = resource.getrusage(usage)
    count, last = wait_replies(queue, baseline + messages, max(1.0, timeout - load.accept_seconds))
    cpu_after = cpu_seconds(pids)
    machine_after = machine_busy()
    load.machine = (machine_after[0] - machine_before[0], machine_after[1] - machine_before[1])
    if redis_conn is not None:
        calls_after = command_calls(redis_conn)
        calls_after["info"] = calls_after.get("info", 0) - 1  # the benchmark's own INFO
        load.redis = {k: v - calls_before.get(k, 0) for k, v in calls_after.items() if v - calls_before.get(k, 0)}
        load.jobs = {k: v - jobs_before.get(k, 0) for k, v in jobs_done(redis_conn).items()}
    load.cpu = {name: cpu_after.get(name, used) - used for name, used in cpu_before.items()}
    load.client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    load.replies = count - baseline
    load.seconds = last - t0
    load.rss = peak_rss(pids)
    if acked:
        got = arrivals(queue)
        load.latencies = sorted(got[m] - acked[m] for m in got if m in acked)
    return load


def jobs_done(conn: redis.Redis) -> dict[str, int]:
    """Jobs the routers and the relay finished so far, from rq's worker records (``rq info`` reads the same)."""
    from rq import Worker

    from lamson import rqcompat

    done: dict[str, int] = {}
    for worker in Worker.all(connection=conn, serializer=rqcompat.SERIALIZER):
        stage = "relay" if ".relay." in worker.name else "routing" if ".router." in worker.name else "other"
        done[stage] = done.get(stage, 0) + int(worker.successful_job_count or 0)
    return done


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))]


def report(load: Load, title: str = "") -> None:
    """Print one load's figures: rates, latency, CPU per program, Redis commands, peak RSS."""
    if title:
        print(title)
    if load.config:
        print(load.config)
    if load.when:
        print(f"taken {load.when}; creating a file on the scratch disk cost {load.disk_us:.0f} µs of CPU just before")
    if load.accept_seconds > 0 and load.accepted:
        print(f"accepted: {load.accepted} in {load.accept_seconds:.2f}s = {load.accepted / load.accept_seconds:.0f} msg/s")
    print(f"replies arrived: {load.replies} in {load.seconds:.2f}s = {load.rate:.0f} msg/s end to end")
    if load.latencies:
        print(f"latency 250 -> reply: p50 {statistics.median(load.latencies) * 1000:.0f} ms, "
              f"p99 {percentile(load.latencies, 0.99) * 1000:.0f} ms")
    for failure in sorted(set(load.failures))[:5]:
        print(f"client error: {failure}")
    if load.replies < load.messages:
        print(f"MISSING: {load.messages - load.replies} replies did not arrive")
    print("CPU ms per message (process tree of each program, first send to last reply):")
    for name in sorted(load.cpu, key=lambda n: (n in NOT_OURS, -load.cpu[n])):
        main_kb, child_kb = load.rss.get(name, (0, 0))
        child = f" (largest child {child_kb / 1024:.0f} MB)" if child_kb else ""
        tag = "  [not ours]" if name in NOT_OURS else ""
        print(f"  {name:<12} {load.cpu_ms(name):6.2f} ms   peak RSS {main_kb / 1024:.0f} MB{child}{tag}")
    print(f"  {'ours, total':<12} {load.ours_ms():6.2f} ms   (without the sink and the load client)")
    print(f"  {'load client':<12} {load.client_cpu * 1000 / max(1, load.replies):6.2f} ms   ({load.client})")
    busy, total = load.machine
    if total:
        measured = sum(load.cpu.values()) + load.client_cpu
        print(f"machine: {100 * busy / total:.0f}% of {os.cpu_count()} cores busy during the load, "
              f"{100 * max(0.0, busy - measured) / total:.0f}% by processes not measured here (other work)")
    if load.redis:
        total = sum(load.redis.values())
        top = sorted(load.redis.items(), key=lambda kv: -kv[1])[:8]
        print(f"Redis commands per message: {total / max(1, load.replies):.1f}  ("
              + ", ".join(f"{k} {v / max(1, load.replies):.2f}" for k, v in top) + ")")
    if load.log_lines:
        print(f"log lines per message: {sum(load.log_lines.values()) / max(1, load.replies):.2f}  ("
              + ", ".join(f"{k} {v / max(1, load.replies):.2f}" for k, v in sorted(load.log_lines.items())) + ")")
    if load.syscalls:
        top = sorted(load.syscalls.items(), key=lambda kv: -kv[1])
        print(f"file system calls per message (receiver, routers, relay; strace, so the rates above are not "
              f"figures): {sum(load.syscalls.values()) / max(1, load.replies):.1f}  ("
              + ", ".join(f"{k} {v / max(1, load.replies):.2f}" for k, v in top) + ")")
    if load.jobs.get("routing") or load.jobs.get("relay"):
        print("rq jobs: " + ", ".join(f"{n} {stage} ({load.replies / n:.1f} messages each)"
                                       for stage, n in sorted(load.jobs.items()) if n and stage != "other"))


def terminate_cleanly() -> None:
    """SIGTERM (a timeout, a kill of the job) raises like Ctrl-C, so that the finally blocks end every
    process this benchmark started."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that depart from the shipped configuration (bench/compare.py takes the same)."""
    parser.add_argument("--routers", type=int, default=2, help="router worker processes (numprocs; shipped: 2)")
    parser.add_argument("--log-level", default="INFO",
                        help="LAMSON_LOG_LEVEL of every program (shipped: INFO), e.g. WARNING")
    parser.add_argument("--no-metrics", action="store_true", help="leave out [program:metrics]")
    parser.add_argument("--no-web", action="store_true", help="leave out [program:web] (lamson web)")
    parser.add_argument("--auth", action="store_true",
                        help="keep SPF/DKIM/DMARC checks of incoming mail on (needs a reachable DNS)")
    parser.add_argument("--sink-dir", choices=["tmpfs", "disk"], default="tmpfs",
                        help="where smtp-sink writes the replies: /dev/shm (default) or the scratch folder on "
                             "the spool's disk (as before: adds thousands of file creations and deletions there)")
    parser.add_argument("--no-settle", action="store_true",
                        help="start the load at once, even while creating a file on the scratch disk is slow "
                             "(by default the bench waits up to 90 s for it; README, 'A measuring pitfall')")


#: System calls that touch the spool's file system (what a shared one, NFS, serves over the network).
FILE_CALLS = "%file,fsync,fdatasync,getdents64"


def trace_start(pids: dict[str, int], out: Path) -> subprocess.Popen[bytes] | None:
    """``strace -c`` on the receiver, the routers and the relay (every thread, every child), counting
    the file system calls :data:`FILE_CALLS`; None without strace. Slows them down: a traced load's
    rates and CPU are not figures, its counts per message are."""
    if shutil.which("strace") is None:
        return None
    targets = [str(pid) for name, pid in pids.items() if name in ("receiver", "relay") or name.startswith("router")]
    command = ["strace", "-c", "-f", "-e", f"trace={FILE_CALLS}", "-o", str(out)]
    for pid in targets:
        command += ["-p", pid]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1)  # attached
    return proc


def trace_stop(proc: subprocess.Popen[bytes] | None, out: Path) -> dict[str, int]:
    """Detach strace and read its summary: system call -> calls."""
    if proc is None:
        return {}
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    calls = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def log_lines(root: Path) -> dict[str, int]:
    """Lines in each of the programs' log files under ``root``/logs (supervisord writes what they print)."""
    found = {}
    for path in (root / "logs").glob("*.log"):
        with open(path, "rb") as f:
            found[path.stem] = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    return found


def config_from(args: argparse.Namespace, sink: str = "smtp-sink") -> Config:
    """The Config the flags of :func:`add_config_flags` ask for."""
    return Config(routers=args.routers, log_level=args.log_level, metrics=not args.no_metrics, web=not args.no_web,
                  auth=args.auth, sink=sink, sink_dir=args.sink_dir)


def measure(root: Path, config: Config, *, messages: int, sessions: int, size: int, senders: int, client: str,
            rate: float = 0.0, timeout: float = 600, settle: bool = True, trace: bool = False) -> Load:
    """Start ``config`` in ``root`` (after waiting for a quiet disk unless ``settle`` is off), run one load,
    stop it. The scratch folder ``root`` is left for the caller to delete (README, 'A measuring pitfall')."""
    root.mkdir(parents=True, exist_ok=True)
    cost = settle_disk(root)[0] if settle else creation_cost(root / "probe" / "0")
    env: dict[str, str] = {}
    try:
        env, ports = start(root, config)
        pids = programs(root, env)
        tracer = trace_start(pids, root / "strace.txt") if trace else None
        lines_before = log_lines(root)
        try:
            load = run_load(ports["receiver"], replies(root, config), pids, messages=messages,
                            sessions=sessions, size=size, senders=senders, client=client, rate=rate,
                            timeout=timeout, redis_conn=redis_client(root, env))
        finally:
            calls = trace_stop(tracer, root / "strace.txt")
        load.syscalls = calls
        time.sleep(0.5)  # supervisord has written what the programs logged at the end
        lines_after = log_lines(root)
        load.log_lines = {name: n - lines_before.get(name, 0) for name, n in lines_after.items()
                          if n - lines_before.get(name, 0)}
    finally:
        if env:
            stop(root, env)
        remove_sink_folder(root)
    load.config = config.describe()
    load.disk_us = cost
    return load


def main() -> None:
    terminate_cleanly()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000, help="approximate body size in bytes")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="pace the sessions to this many messages/s in all (default: as fast as possible)")
    parser.add_argument("--senders", type=int, default=100,
                        help="distinct envelope senders, round robin (1: one conversation, handled in order)")
    parser.add_argument("--sink", choices=["log", "smtp-sink"], default="smtp-sink",
                        help="smart host: Postfix's smtp-sink (default) or the shipped logging server ([program:log])")
    parser.add_argument("--client", choices=["smtplib", "smtp-source"], default="smtplib",
                        help="load client: Python threads (default; per-message latency) or Postfix's smtp-source "
                             "(cheaper; one sender per process, no latency figures, --rate not supported)")
    parser.add_argument("--trace-files", action="store_true",
                        help="count the spool's file system calls per message with strace (slows the load down)")
    add_config_flags(parser)
    args = parser.parse_args()
    if args.client == "smtp-source" and args.rate:
        parser.error("--rate needs --client smtplib")

    root = Path(tempfile.mkdtemp(prefix="lamson-bench-"))
    try:
        load = measure(root, config_from(args, args.sink), messages=args.messages, sessions=args.sessions,
                       size=args.size, senders=args.senders, client=args.client, rate=args.rate,
                       timeout=args.timeout, settle=not args.no_settle, trace=args.trace_files)
        senders = (f"{max(1, min(args.sessions, args.senders))} (smtp-source: one per process)"
                   if args.client == "smtp-source" else args.senders)
        report(load, f"messages={args.messages} sessions={args.sessions} size~{args.size}B "
                     f"senders={senders} sink={args.sink} client={args.client} rate={args.rate or 'max'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
