from lamson import utils

# Every test runs against the testing boot: no receiver, exceptions raised.
utils.import_settings(True, boot_module="config.testing")
