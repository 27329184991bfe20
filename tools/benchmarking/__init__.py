"""Code of tools/benchmark.py: measure every method side by side - parameters, FLOPs,
training step, memory, inference.

Each method is measured in a fresh subprocess (so that peak memory is its own), all in
one run of ``tools/benchmark.py``, with warm-up iterations and the median of several
repeats. Times are reported as ratios to the frozen backbone's inference forward (the
floor any method pays) and to full fine-tuning on the same backbone. The floor is timed
again inside every method's process, in turns with the method's own inference, so that
the inference ratio (e.g. "merged methods within 2% of the frozen forward") does not
depend on clock drift between processes. ``--rounds N`` measures the whole list N times
in turns (A B C, A B C, ...) and reports each timed figure as the median over rounds
with its spread, so that a ratio to full fine-tuning is read with its reproducibility.

- :mod:`.methods`: the methods and how each is built;
- :mod:`.measure`: one method's figures (:func:`measure`) and all of them
  (:func:`run_all`; a method that fails gets an ``error`` and the others go on), the
  attention backend (:func:`sdpa_context`), FLOP counts (:func:`count_flops`) and the
  devices' peaks (:func:`peak_tflops_for`);
- :mod:`.report`: the table, CSV, JSON, chart and profiles.
"""

from .measure import (
    COMPILE_MODES,
    PEAK_TFLOPS,
    SDPA_BACKENDS,
    add_peak_shares,
    add_ratios,
    combine_rounds,
    count_flops,
    device_busy,
    measure,
    part_times,
    peak_tflops_for,
    run_all,
    sdpa_context,
)
from .methods import ARCHS, CHECKPOINTED, CP_SUFFIX, METHODS, base_method, build_classifier
from .report import format_profile, machine_description, write_outputs

__all__ = [
    'ARCHS',
    'CHECKPOINTED',
    'COMPILE_MODES',
    'CP_SUFFIX',
    'METHODS',
    'PEAK_TFLOPS',
    'SDPA_BACKENDS',
    'add_peak_shares',
    'add_ratios',
    'base_method',
    'build_classifier',
    'combine_rounds',
    'count_flops',
    'device_busy',
    'format_profile',
    'machine_description',
    'measure',
    'part_times',
    'peak_tflops_for',
    'run_all',
    'sdpa_context',
    'write_outputs',
]
