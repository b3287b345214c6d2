from escalator_handlers.plugins.smoke_steps import *  # noqa
