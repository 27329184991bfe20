"""mmwst's registries, children of mmengine's root registries.

Every mmwst class registers here under the scope ``mmwst``. Configs name them with
the scope prefix (``type='mmwst.TunedVisionTransformer'``) and load the package with
``custom_imports=dict(imports=['mmwst'], allow_failed_imports=False)``, so they build
under mmpretrain's, mmdet's or mmseg's default scope and with those projects' own
tools as well as mmwst's.
"""

from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import PARAM_SCHEDULERS as ROOT_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as ROOT_RUNNERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=ROOT_MODELS, scope='mmwst', locations=['mmwst.models'])
DATASETS = Registry('dataset', parent=ROOT_DATASETS, scope='mmwst', locations=['mmwst.datasets'])
HOOKS = Registry('hook', parent=ROOT_HOOKS, scope='mmwst', locations=['mmwst.engine'])
RUNNERS = Registry('runner', parent=ROOT_RUNNERS, scope='mmwst', locations=['mmwst.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=ROOT_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmwst',
    locations=['mmwst.engine'],
)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=ROOT_PARAM_SCHEDULERS, scope='mmwst', locations=['mmwst.engine']
)
