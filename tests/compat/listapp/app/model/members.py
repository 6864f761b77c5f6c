"""Who is on which list: one JSON file of addresses per list, under settings.members_dir.

A file per list keeps the model small enough to read in a test; addresses
are kept lowercased, as the router gives them (message.route_from).
"""
import json
import os

from config import settings


def _path(list_name):
    return os.path.join(settings.members_dir, list_name + ".json")


def find(list_name):
    """The members of list_name, sorted; [] for a list nobody joined yet."""
    try:
        with open(_path(list_name)) as members:
            return json.load(members)
    except OSError:
        return []


def _save(list_name, addresses):
    if not os.path.exists(settings.members_dir):
        os.makedirs(settings.members_dir)
    with open(_path(list_name), "w") as members:
        json.dump(sorted(set(addresses)), members)


def add(list_name, address):
    _save(list_name, find(list_name) + [address.lower()])


def remove(list_name, address):
    _save(list_name, [a for a in find(list_name) if a != address.lower()])


def lists():
    """Every list that has (or had) members."""
    if not os.path.exists(settings.members_dir):
        return []
    return sorted(name[:-5] for name in os.listdir(settings.members_dir) if name.endswith(".json"))


def remove_everywhere(address):
    """Take address off every list (a hard bounce says the mailbox is gone)."""
    for list_name in lists():
        remove(list_name, address)


def clear():
    for list_name in lists():
        os.unlink(_path(list_name))
