"""The cache verbs. Every module here registers its command classes in the default registry."""

import importlib
import pkgutil

# Importing each module is what registers its verbs: a new verb is a class in a module here.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
