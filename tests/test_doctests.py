"""Every registered mmwst class documents itself with an Examples block that runs."""

import doctest

import pytest

import mmwst  # noqa: F401
import mmwst.datasets  # noqa: F401
import mmwst.engine  # noqa: F401
import mmwst.models  # noqa: F401
from mmwst.registry import DATASETS, HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, RUNNERS

CLASSES = sorted(
    (cls for reg in (MODELS, DATASETS, HOOKS, RUNNERS, OPTIM_WRAPPER_CONSTRUCTORS)
     for cls in reg.module_dict.values()),
    key=lambda c: c.__name__,
)  # fmt: skip


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_registered_class_has_a_running_example(cls, tmp_path, monkeypatch):
    assert 'Examples:' in (cls.__doc__ or ''), f'{cls.__name__} has no Examples block'
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(cls, cls.__name__) if t.examples]
    assert tests, f'{cls.__name__}: no runnable example'
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f'{cls.__name__}: {result.failed} example(s) failed'
