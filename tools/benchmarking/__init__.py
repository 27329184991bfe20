"""Code of tools/benchmark.py: measure every method side by side - parameters, FLOPs,
training step, memory, inference.

Each method is measured in a fresh subprocess (so that peak memory is its own), all in
one run of ``tools/benchmark.py``, with warm-up iterations and the median of several
repeats. Times are reported as ratios to the frozen backbone's inference forward (the
floor any method pays) and to full fine-tuning on the same backbone. The floor is timed
again inside every method's process, in turns with the method's own inference, so that
the inference ratio (e.g. "merged methods within 2% of the frozen forward") does not
depend on clock drift between processes.

- :mod:`.methods`: the methods and how each is built;
- :mod:`.measure`: one method's figures (:func:`measure`) and all of them
  (:func:`run_all`);
- :mod:`.report`: the table, CSV, JSON, chart and profiles.
"""

from .measure import add_ratios, measure, run_all
from .methods import ARCHS, CHECKPOINTED, CP_SUFFIX, METHODS, base_method, build_classifier
from .report import format_profile, machine_description, write_outputs

__all__ = [
    'ARCHS',
    'CHECKPOINTED',
    'CP_SUFFIX',
    'METHODS',
    'add_ratios',
    'base_method',
    'build_classifier',
    'format_profile',
    'machine_description',
    'measure',
    'run_all',
    'write_outputs',
]
