"""Knowledge-distillation pieces for the distilled BERT detector (FedXLog 3.2.2).

Loss of the student = ``kd_weight`` * soft-label KD (Hinton: KL at temperature T,
scaled by T^2 so its gradients keep their size as T changes) + (1 - ``kd_weight``)
* hard-label CE + ``attr_weight`` * attribution loss.

Attribution = |gradient x input| of the anomaly margin (logit_anomaly -
logit_normal) at the word embeddings, normalised over the window's real tokens
to a distribution. We use gradient x input rather than attention weights
because attention is not importance (a head can attend to a token whose value
it then ignores), while gradient x input is a first-order Shapley estimate,
close to the SHAP values we later report; the cost is a double backward pass
through the (small) student. The teacher's attributions are computed once and
cached with its logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from fedlog.parse.hashing import CLS, PAD

EPS = 1e-8


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=-1)
    p_t = F.softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_s, p_t, reduction="batchmean") * t * t


def real_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Event positions (not [PAD], not [CLS])."""
    return (tokens != PAD) & (tokens != CLS)


def attributions(
    model: BertForSequenceClassification, tokens: torch.Tensor, attention: torch.Tensor, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, per-token importance distribution by |gradient x input| of the anomaly margin)."""
    embeds = model.get_input_embeddings()(tokens)
    if not create_graph:
        embeds = embeds.detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, attention_mask=attention).logits
    margin = (logits[:, 1] - logits[:, 0]).sum()
    (grad,) = torch.autograd.grad(margin, embeds, create_graph=create_graph)
    raw = (grad * embeds).sum(-1).abs() * real_tokens(tokens)
    dist = raw / raw.sum(dim=1, keepdim=True).clamp_min(EPS)
    return logits, dist


def attribution_loss(student: torch.Tensor, teacher: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between per-token importance distributions, over real tokens."""
    real = real_tokens(tokens)
    terms = teacher * (torch.log(teacher + EPS) - torch.log(student + EPS)) * real
    return terms.sum(dim=1).mean()


def student_layers(teacher_layers: int, wanted: int) -> list[int]:
    """Teacher layers the student keeps: every other one (DistilBERT) or ``wanted`` evenly spaced."""
    if wanted <= 0:
        return list(range(0, teacher_layers, 2))
    if wanted > teacher_layers:
        raise ValueError(f"student-layers {wanted} > the teacher's {teacher_layers} layers")
    step = teacher_layers / wanted
    return [int(i * step) for i in range(wanted)]


def distil(teacher: BertForSequenceClassification, keep: list[int]) -> BertForSequenceClassification:
    """A student with the teacher's embeddings, head and the ``keep`` layers (DistilBERT-style init)."""
    config = BertConfig.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(keep)
    student = BertForSequenceClassification(config)
    source = teacher.state_dict()
    state = {}
    for key in student.state_dict():
        if key.startswith("bert.encoder.layer."):
            idx, rest = key[len("bert.encoder.layer.") :].split(".", 1)
            state[key] = source[f"bert.encoder.layer.{keep[int(idx)]}.{rest}"]
        else:
            state[key] = source[key]
    student.load_state_dict(state)
    return student


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
