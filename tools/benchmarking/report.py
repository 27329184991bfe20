"""The benchmark's outputs: a Markdown table, CSV, JSON, a chart and the profiles."""

from __future__ import annotations

import json
import os
import platform

COLUMNS = [
    ('method', 'method', '{}'),
    ('trainable', 'trainable', '{:,}'),
    ('total', 'total', '{:,}'),
    ('flops', 'GFLOPs (fwd)', '{:.2f}'),
    ('train_flops', 'GFLOPs (train fwd+bwd)', '{:.2f}'),
    ('train_step_s', 'train step (s)', '{:.3f}'),
    ('train_vs_frozen_fwd', 'train / frozen fwd', '{:.2f}x'),
    ('train_vs_full_ft', 'train / full FT', '{:.2f}x'),
    ('train_vs_full_ft_spread', 'train / full FT, spread over rounds', '{:.1%}'),
    ('train_img_s', 'train img/s', '{:.1f}'),
    ('train_tflops_s', 'train TFLOP/s', '{:.2f}'),
    ('train_peak_share', 'train share of peak', '{:.1%}'),
    ('peak_mem_mb', 'peak mem (MB)', '{:.0f}'),
    ('mem_vs_full_ft', 'mem / full FT', '{:.2f}x'),
    ('peak_tensor_mb', 'peak tensor mem (MB)', '{:.0f}'),
    ('tensor_mem_vs_full_ft', 'tensor mem / full FT', '{:.2f}x'),
    ('train_ops', 'ops / train step', '{:,}'),
    ('train_ops_vs_lora', 'ops / LoRA', '{:.2f}x'),
    ('train_ops_vs_full_ft', 'ops / full FT', '{:.2f}x'),
    ('infer_ops', 'ops / inference', '{:,}'),
    ('infer_ops_vs_frozen', 'inference ops / frozen', '{:.2f}x'),
    ('graph_breaks', 'graph breaks', '{}'),
    ('compiled_train_kernels', 'kernels / compiled step', '{:,}'),
    ('compiled_train_vs_lora', 'compiled / LoRA', '{:.2f}x'),
    ('compiled_train_vs_full_ft', 'compiled / full FT', '{:.2f}x'),
    ('compiled_infer_kernels', 'kernels / compiled inference', '{:,}'),
    ('compiled_infer_vs_frozen', 'compiled inference / frozen', '{:.2f}x'),
    ('infer_s', 'inference (s)', '{:.3f}'),
    ('frozen_infer_s', 'frozen inference, same run (s)', '{:.3f}'),
    ('infer_vs_frozen', 'inference / frozen', '{:.3f}x'),
    ('infer_vs_frozen_spread', 'inference / frozen, spread over rounds', '{:.1%}'),
    ('infer_img_s', 'inference img/s', '{:.1f}'),
    ('infer_tflops_s', 'inference TFLOP/s', '{:.2f}'),
    ('infer_peak_share', 'inference share of peak', '{:.1%}'),
    ('merged_inference', 'merged', '{}'),
    ('attention_kernels', 'attention kernel', '{}'),
    ('compile_s', 'compile (s)', '{:.1f}'),
    ('cudagraph_skips', 'graphs not captured as CUDA graphs', '{}'),
    ('rounds', 'rounds', '{}'),
    ('wall_s', 'wall (s)', '{:.1f}'),
    ('error', 'error', '{}'),
]
#: The operator targets: (methods, ratio key, the most it may be, what it compares).
OP_TARGETS = (
    (('wst', 'ssf', 'rlrr', 'hst'), 'train_ops_vs_lora', 1.3, "LoRA's training step"),
    (('dense_wst_hst',), 'train_ops_vs_full_ft', 1.5, "full fine-tuning's training step"),
    (('dense_beside_vit',), 'train_ops_vs_full_ft', 1.2, "full fine-tuning's training step"),
    (('wst', 'hst'), 'infer_ops_vs_frozen', 2.0, 'the frozen forward'),
    (('dense_wst_hst', 'dense_beside_vit'), 'infer_ops_vs_frozen', 3.0, 'the frozen forward'),
)


def target_lines(results: list[dict]) -> list[str]:
    """Each operator target and graph breaks (0 for every method), met or not, for the
    methods measured."""
    by_method = {r['method']: r for r in results if 'error' not in r}
    lines = []
    for methods, key, limit, what in OP_TARGETS:
        for method in methods:
            value = by_method.get(method, {}).get(key)
            if value is not None:
                verdict = 'met' if value <= limit else 'NOT met'
                lines.append(
                    f'- {method}: {value:.2f}x {what} in operators (target <= {limit}x): {verdict}'
                )
    broken = [r['method'] for r in by_method.values() if r.get('graph_breaks')]
    counted = [r for r in by_method.values() if r.get('graph_breaks') is not None]
    if counted:
        lines.append(
            f'- graph breaks: {"none" if not broken else ", ".join(broken)} '
            f'({len(counted)} methods traced)'
        )
    return lines


def cudagraph_skip_lines(results: list[dict]) -> list[str]:
    """For a run that captures CUDA graphs (``--compile inductor:reduce-overhead`` on a
    GPU), each method with graphs inductor did not capture, and inductor's reasons."""
    lines = []
    for r in results:
        if not r.get('cudagraph_skips'):
            continue
        reasons = r.get('cudagraph_skip_reasons') or {}
        said = '; '.join(f'{m} (x{n})' if n > 1 else m for m, n in reasons.items())
        lines.append(f'- {r["method"]}: {r["cudagraph_skips"]}: {said or "no reason given"}')
    return lines


def _cell(result: dict, key: str, fmt: str, markdown: bool = False) -> str:
    value = result.get(key)
    if value is None:
        return '-'
    if key in ('flops', 'train_flops'):
        value = value / 1e9
    if key == 'attention_kernels':  # 'aten::_scaled_dot_product_flash_attention' -> 'flash_...'
        value = ', '.join(k.replace('aten::_scaled_dot_product_', '') for k in value) or 'none'
    text = fmt.format(value)
    return text.replace('|', '\\|') if markdown else text


def machine_description(device: str) -> str:
    import torch

    desc = (
        f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads '
        f'(torch uses {torch.get_num_threads()}), torch {torch.__version__}'
    )
    if device == 'cuda' and torch.cuda.is_available():
        desc += f', {torch.cuda.get_device_name()}'
    return desc


def write_outputs(results: list[dict], out_prefix: str, title: str) -> list[str]:
    import csv

    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    # a column none of the results has (all timings with --ops-only) is left out
    columns = [
        c for c in COLUMNS if c[0] == 'method' or any(r.get(c[0]) is not None for r in results)
    ]
    header = [label for _, label, _ in columns]
    rows = [[_cell(r, key, fmt) for key, _, fmt in columns] for r in results]
    md_rows = [[_cell(r, key, fmt, markdown=True) for key, _, fmt in columns] for r in results]
    paths = [f'{out_prefix}.md', f'{out_prefix}.csv', f'{out_prefix}.png', f'{out_prefix}.json']
    with open(paths[0], 'w') as f:
        f.write(f'{title}\n\n| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header) + '\n')
        f.writelines('| ' + ' | '.join(row) + ' |\n' for row in md_rows)
        targets = target_lines(results)
        if targets:
            f.write('\nOperator targets (what a GPU would launch, counted on this machine):\n\n')
            f.writelines(line + '\n' for line in targets)
        skipped = cudagraph_skip_lines(results)
        if skipped:
            f.write('\nCompiled graphs run kernel by kernel, not as CUDA graphs:\n\n')
            f.writelines(line + '\n' for line in skipped)
        for result in results:
            if result.get('profile'):
                f.write('\n' + format_profile(result) + '\n')
    with open(paths[1], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    with open(paths[3], 'w') as f:
        json.dump(results, f, indent=2)
    _chart(results, paths[2], title)
    return paths


def _chart(results: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    trained = [r for r in results if r.get('train_vs_frozen_fwd') is not None]
    names = [r['method'] for r in trained]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 4.0))
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        [r['train_vs_frozen_fwd'] for r in trained],
        width=0.4,
        label='train step / frozen forward',
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [r.get('infer_vs_frozen') or 0 for r in trained],
        width=0.4,
        label='inference / frozen forward',
    )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=45, ha='right')
    ax.set_ylabel('ratio to the frozen forward')
    ax.set_title(title, fontsize='small')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_profile(result: dict) -> str:
    """Markdown tables of one method's profiled training step."""
    prof = result['profile']
    busy = ''
    if prof.get('busy_ms') is not None:
        busy = f'; GPU busy {prof["busy_ms"]:.1f} ms in {prof["kernels"]} kernels'
        if prof.get('busy_share') is not None:
            busy += f', {prof["busy_share"]:.0%} of the timed step'
    lines = [
        f'### Profile: {result["method"]} (one {"compiled " if prof.get("compiled") else ""}'
        f'training step, {prof["clock"]} '
        f'self time {prof["total_ms"]:.0f} ms{busy})',
        '',
        '| operator | self (ms) | share | calls |',
        '|---|---:|---:|---:|',
    ]
    lines += [
        f'| `{op["op"]}` | {op["self_ms"]:.1f} | {op["share"]:.1%} | {op["calls"]} |'
        for op in prof['ops']
    ]
    if prof['parts'] and prof['parts'][0].get('device_ms') is not None:
        # on a GPU: the device time of the kernels each part launched, then the host's
        lines += [
            '',
            '| part (forward, inclusive) | device (ms) | host (ms) | calls |',
            '|---|---:|---:|---:|',
        ]
        lines += [
            f'| {part["part"]} | {part["device_ms"]:.1f} | {part["forward_ms"]:.1f} '
            f'| {part["calls"]} |'
            for part in prof['parts']
        ]
    elif prof['parts']:
        lines += [
            '',
            '| part (forward, inclusive) | time (ms) | calls |',
            '|---|---:|---:|',
        ]
        lines += [
            f'| {part["part"]} | {part["forward_ms"]:.1f} | {part["calls"]} |'
            for part in prof['parts']
        ]
    if prof.get('saved'):
        lines += [
            '',
            f'| saved for backward (innermost part) | MiB | share of {prof["saved_mb"]:.0f} MiB |',
            '|---|---:|---:|',
        ]
        lines += [
            f'| {part["part"]} | {part["saved_mb"]:.1f} | '
            f'{part["saved_mb"] / (prof["saved_mb"] or 1.0):.1%} |'
            for part in prof['saved']
        ]
    return '\n'.join(lines)
