from . import backbones, heads, layers, necks, task_utils, tuners  # noqa: F401  (registers the classes)
from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .tuners import *  # noqa: F401,F403
