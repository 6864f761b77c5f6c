# The list application's settings, written as Lamson 1.x projects wrote them.
relay_config = {'host': 'localhost', 'port': 8825}

receiver_config = {'host': 'localhost', 'port': 8823}

handlers = ['app.handlers.bounce', 'app.handlers.mailinglist']

router_defaults = {
    'host': 'example\\.com',
    'list_name': '[a-z]+',
    'id_number': '[a-z0-9]+',
}

template_config = {'dir': 'app', 'module': 'templates'}

# Where the application keeps its lists and its archive of posts.
members_dir = 'app/data/members'
archive_dir = 'app/data/archive'
pending_dir = 'run/pending'
