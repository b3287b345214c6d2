from escalator_handlers.smoke_steps import *  # noqa
