"""mmwst's registries, children of mmengine's root registries.

Every mmwst class registers here under the scope ``mmwst``. Configs name them with
the scope prefix (``type='mmwst.ViTTuned'``) and load the package with
``custom_imports=dict(imports=['mmwst'], allow_failed_imports=False)``, so they build
under mmpretrain's, mmdet's or mmseg's default scope and with those projects' own
tools as well as mmwst's.
"""

from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=ROOT_MODELS, scope='mmwst', locations=['mmwst.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=ROOT_MODEL_WRAPPERS, scope='mmwst', locations=['mmwst.engine']
)
DATASETS = Registry('dataset', parent=ROOT_DATASETS, scope='mmwst', locations=['mmwst.datasets'])
TRANSFORMS = Registry(
    'transform', parent=ROOT_TRANSFORMS, scope='mmwst', locations=['mmwst.datasets']
)
HOOKS = Registry('hook', parent=ROOT_HOOKS, scope='mmwst', locations=['mmwst.engine'])
METRICS = Registry('metric', parent=ROOT_METRICS, scope='mmwst', locations=['mmwst.evaluation'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=ROOT_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmwst',
    locations=['mmwst.engine'],
)
