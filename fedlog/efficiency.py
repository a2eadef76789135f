"""Efficiency of the distilled BERT's teacher and student (FedXLog Table 3 and section 4.4.2).

Per model: parameters, fp32 size, peak memory of a training step, FLOPs of one
forward (``torch.utils.flop_counter``), latency of one window, throughput over
many windows (the detector's own batched scoring path, tokenization
included), bytes a round's reply would carry, and F1 at the label-free
threshold. ``student-int8`` is the student with dynamic int8 quantization of
its linear layers (``torch.ao.quantization.quantize_dynamic``): inference only,
same parameters sent per round.

Peak training memory: on CUDA, ``max_memory_allocated``; on CPU, the growth of
the peak resident set of a fresh process over a few training steps (model,
gradients, AdamW state and activations), since PyTorch has no CPU allocator
statistics.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from collections.abc import Sequence

import torch
from flwr.app import ArrayRecord
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fedlog.detectors.distilbert import DistilBert
from fedlog.detectors.distill import count_parameters
from fedlog.metrics import detection_metrics
from fedlog.windows import Split, Window


def _train_steps(model: nn.Module, tokens: torch.Tensor, attention: torch.Tensor) -> None:
    model.train()
    labels = torch.zeros(len(tokens), dtype=torch.long, device=tokens.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(input_ids=tokens, attention_mask=attention).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _peak_worker(models: list[nn.Module], tokens: torch.Tensor, attention: torch.Tensor, queue) -> None:
    """Models in increasing size: the peak RSS after each, over the same baseline, is that model's
    peak (a larger model's peak exceeds the smaller ones')."""
    torch.set_num_threads(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peaks = []
    for model in models:
        _train_steps(model, tokens, attention)
        peaks.append((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)  # Linux: KiB
    queue.put(peaks)


def peak_training_bytes(models: list[nn.Module], tokens: torch.Tensor, attention: torch.Tensor) -> list[int]:
    """Peak memory of three AdamW training steps of each model (in increasing size)."""
    if tokens.is_cuda:
        peaks = []
        for model in models:
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
            _train_steps(model, tokens, attention)
            peaks.append(torch.cuda.max_memory_allocated() - start)
        return peaks
    ctx = multiprocessing.get_context("spawn")  # a fresh process: its peak RSS is ours to read
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_worker, args=(models, tokens, attention, queue))
    proc.start()
    peaks = queue.get(timeout=900)
    proc.join()
    # The parameters were resident before the first step; count them as the paper does.
    return [int(p + sum(q.numel() * q.element_size() for q in m.parameters())) for p, m in zip(peaks, models)]


def _f1(det: DistilBert, model: nn.Module, split: Split) -> dict[str, float]:
    threshold = det._threshold_of(model, split.val, split.train)
    scores = det.probabilities(model, split.test)
    m = detection_metrics([w.label for w in split.test], scores, threshold)
    return {k: float(m[k]) for k in ("precision", "recall", "f1")}


def _latency_and_throughput(det: DistilBert, model: nn.Module, windows: Sequence[Window]) -> tuple[float, float]:
    single = []
    for w in windows[:50]:
        started = time.perf_counter()
        det.probabilities(model, [w])
        single.append(time.perf_counter() - started)
    det.probabilities(model, windows[:256])  # warm-up
    started = time.perf_counter()
    det.probabilities(model, windows)
    return statistics.median(single), len(windows) / (time.perf_counter() - started)


def efficiency_rows(det: DistilBert, split: Split, windows: Sequence[Window], batch: int = 32) -> list[dict]:
    """One row per model: teacher, student, student-int8."""
    teacher = det.teacher(split.train, split.val)
    if teacher is None:
        raise ValueError("this silo trains no teacher (no labelled anomaly in its training windows)")
    student = det.module.eval()
    models = {"teacher": teacher.model.eval(), "student": student}
    if det.device.type == "cpu":
        models["student-int8"] = torch.ao.quantization.quantize_dynamic(student, {nn.Linear}, dtype=torch.qint8)
    lengths = sorted(len(w.events) for w in windows)
    median_window = next(w for w in windows if len(w.events) == lengths[len(lengths) // 2])
    chunks, _ = det._chunks([median_window])
    one_tokens, one_attention = det._batch(chunks[:1])
    train_chunks, _ = det._chunks(split.train[:batch])
    tokens, attention = det._batch(train_chunks[:batch])
    peaks = dict(zip(("student", "teacher"), peak_training_bytes([student, teacher.model], tokens, attention)))
    rows = []
    for name, model in models.items():
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=one_tokens, attention_mask=one_attention)
        latency, throughput = _latency_and_throughput(det, model, windows)
        quantized = name.endswith("int8")
        params = count_parameters(student if quantized else model)
        reference = student if quantized else model
        rows.append(
            {
                "model": name,
                "parameters": params,
                "fp32_mb": params * 4 / 2**20,
                "peak_train_mb": peaks.get(name, float("nan")) / 2**20,
                # quantized kernels are invisible to the FLOP counter; int8 MACs are not fp32 FLOPs anyway
                "gflops_forward": float("nan") if quantized else counter.get_total_flops() / 1e9,
                "tokens_forward": int(one_tokens.shape[1]),
                "latency_ms": latency * 1e3,
                "windows_per_s": throughput,
                "bytes_per_round": ArrayRecord({k: v.cpu() for k, v in reference.state_dict().items()}).count_bytes(),
            }
            | _f1(det, model, split)
        )
    return rows


def format_rows(rows: Sequence[dict], threads: int) -> str:
    lines = [
        f"torch threads: {threads}; latency = one window (median of 50), throughput = batched scoring",
        "| model | parameters | fp32 MB | peak train MB | GFLOPs/forward (tokens) | latency ms | windows/s "
        "| bytes/round | P | R | F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['fp32_mb']:.1f} | {r['peak_train_mb']:.0f} "
            f"| {r['gflops_forward']:.4f} ({r['tokens_forward']}) | {r['latency_ms']:.2f} | {r['windows_per_s']:,.0f} "
            f"| {r['bytes_per_round']:,} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
        )
    return "\n".join(lines)
