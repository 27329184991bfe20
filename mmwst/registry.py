"""mmwst's registries, children of mmengine's root registries.

Every mmwst class registers here under the scope ``mmwst``. Configs name them with
the scope prefix (``type='mmwst.TunedVisionTransformer'``) and load the package with
``custom_imports=dict(imports=['mmwst'], allow_failed_imports=False)``, so they build
under mmpretrain's, mmdet's or mmseg's default scope and with those projects' own
tools as well as mmwst's.

The scope ``mmwst`` has a registry under every root registry of mmengine, and names
that mmwst does not define resolve in the *host scope*: the default scope that was in
force when the ``mmwst`` scope was entered. mmengine enters it for the parts of a
config that inherits an mmwst config by package (``_base_ = ['mmwst::...']``): it
marks them ``_scope_='mmwst'``. mmwst's configs, however, name the host library's
classes without a prefix (``type='BaseSegDataset'`` under ``default_scope='mmseg'``),
so under the ``mmwst`` scope those names are looked up in the host's registries, as
they would have been in the config that defined them.
"""

from importlib import import_module

from mmengine.registry import DATA_SAMPLERS as ROOT_DATA_SAMPLERS
from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import EVALUATOR as ROOT_EVALUATOR
from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import INFERENCERS as ROOT_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as ROOT_LOG_PROCESSORS
from mmengine.registry import LOOPS as ROOT_LOOPS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as ROOT_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as ROOT_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as ROOT_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as ROOT_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as ROOT_RUNNERS
from mmengine.registry import STRATEGIES as ROOT_STRATEGIES
from mmengine.registry import TASK_UTILS as ROOT_TASK_UTILS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import VISBACKENDS as ROOT_VISBACKENDS
from mmengine.registry import VISUALIZERS as ROOT_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_WEIGHT_INITIALIZERS
from mmengine.registry import DefaultScope, Registry

SCOPE = 'mmwst'


def host_scope() -> str | None:
    """The default scope in force before the innermost switch to the ``mmwst`` scope
    (None when the ``mmwst`` scope is not the current one, or nothing encloses it)."""
    # DefaultScope keeps its instances in creation order; a switch of scope (a config
    # part marked ``_scope_``) adds one for its duration and drops it afterwards
    scopes = [scope.scope_name for scope in DefaultScope._instance_dict.values()]
    if not scopes or scopes[-1] != SCOPE:
        return None
    for name in reversed(scopes):
        if name != SCOPE:
            return name
    return None


def _host_registry(registry: Registry, host: str) -> Registry | None:
    """The registry of scope ``host`` in the tree of ``registry`` (its registry module
    imported first, as mmengine does when it switches to a scope)."""
    try:
        import_module(f'{host}.registry')
    except ImportError:
        pass
    return registry._get_root_registry()._search_child(host)


class MmwstRegistry(Registry):
    """A registry of the ``mmwst`` scope. While ``mmwst`` is the default scope, a name
    without a scope prefix that mmwst does not define is looked up in the host scope's
    registry of the same kind first (:func:`host_scope`; the host may override a class of
    the root registry, as mmseg's ``LoadAnnotations`` overrides mmcv's), then as usual."""

    def get(self, key: str):
        if isinstance(key, str) and '.' not in key:
            self.import_from_location()
            host = host_scope() if key not in self._module_dict else None
            registry = _host_registry(self, host) if host else None
            if registry is not None and registry is not self:
                found = registry.get(key)
                if found is not None:
                    return found
        return super().get(key)


MODELS = MmwstRegistry('model', parent=ROOT_MODELS, scope=SCOPE, locations=['mmwst.models'])
DATASETS = MmwstRegistry('dataset', parent=ROOT_DATASETS, scope=SCOPE, locations=['mmwst.datasets'])
HOOKS = MmwstRegistry('hook', parent=ROOT_HOOKS, scope=SCOPE, locations=['mmwst.engine'])
RUNNERS = MmwstRegistry('runner', parent=ROOT_RUNNERS, scope=SCOPE, locations=['mmwst.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = MmwstRegistry(
    'optimizer wrapper constructor',
    parent=ROOT_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE,
    locations=['mmwst.engine'],
)
PARAM_SCHEDULERS = MmwstRegistry(
    'parameter scheduler', parent=ROOT_PARAM_SCHEDULERS, scope=SCOPE, locations=['mmwst.engine']
)
# where mmwst registers nothing: there only to resolve host names under the mmwst scope
# (their location, mmwst itself, is already imported)
RUNNER_CONSTRUCTORS = MmwstRegistry(
    'runner constructor', parent=ROOT_RUNNER_CONSTRUCTORS, scope=SCOPE, locations=['mmwst']
)
LOOPS = MmwstRegistry('loop', parent=ROOT_LOOPS, scope=SCOPE, locations=['mmwst'])
STRATEGIES = MmwstRegistry('strategy', parent=ROOT_STRATEGIES, scope=SCOPE, locations=['mmwst'])
DATA_SAMPLERS = MmwstRegistry(
    'data sampler', parent=ROOT_DATA_SAMPLERS, scope=SCOPE, locations=['mmwst']
)
TRANSFORMS = MmwstRegistry('transform', parent=ROOT_TRANSFORMS, scope=SCOPE, locations=['mmwst'])
MODEL_WRAPPERS = MmwstRegistry(
    'model_wrapper', parent=ROOT_MODEL_WRAPPERS, scope=SCOPE, locations=['mmwst']
)
WEIGHT_INITIALIZERS = MmwstRegistry(
    'weight initializer', parent=ROOT_WEIGHT_INITIALIZERS, scope=SCOPE, locations=['mmwst']
)
OPTIMIZERS = MmwstRegistry('optimizer', parent=ROOT_OPTIMIZERS, scope=SCOPE, locations=['mmwst'])
OPTIM_WRAPPERS = MmwstRegistry(
    'optim_wrapper', parent=ROOT_OPTIM_WRAPPERS, scope=SCOPE, locations=['mmwst']
)
METRICS = MmwstRegistry('metric', parent=ROOT_METRICS, scope=SCOPE, locations=['mmwst'])
EVALUATOR = MmwstRegistry('evaluator', parent=ROOT_EVALUATOR, scope=SCOPE, locations=['mmwst'])
TASK_UTILS = MmwstRegistry('task util', parent=ROOT_TASK_UTILS, scope=SCOPE, locations=['mmwst'])
VISUALIZERS = MmwstRegistry('visualizer', parent=ROOT_VISUALIZERS, scope=SCOPE, locations=['mmwst'])
VISBACKENDS = MmwstRegistry(
    'vis_backend', parent=ROOT_VISBACKENDS, scope=SCOPE, locations=['mmwst']
)
LOG_PROCESSORS = MmwstRegistry(
    'log_processor', parent=ROOT_LOG_PROCESSORS, scope=SCOPE, locations=['mmwst']
)
INFERENCERS = MmwstRegistry('inferencer', parent=ROOT_INFERENCERS, scope=SCOPE, locations=['mmwst'])
FUNCTIONS = MmwstRegistry('function', parent=ROOT_FUNCTIONS, scope=SCOPE, locations=['mmwst'])
