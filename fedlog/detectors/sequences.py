"""Token sequences for the transformer detectors: long windows cut into chunks, chunks into padded batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedlog.parse.hashing import CLS, PAD


def chunk(token_lists: Sequence[list[int]], size: int) -> tuple[list[list[int]], np.ndarray]:
    """Chunks of at most ``size`` tokens, and the index of the list each came from; an empty list
    is one empty chunk, so every window gets a score."""
    chunks, owner = [], []
    for i, tokens in enumerate(token_lists):
        for lo in range(0, max(len(tokens), 1), size):
            chunks.append(tokens[lo : lo + size])
            owner.append(i)
    return chunks, np.asarray(owner, dtype=int)


def cls_batch(chunks: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] + tokens, right-padded with [PAD], and the attention mask."""
    width = 1 + max(len(c) for c in chunks)
    tokens = torch.full((len(chunks), width), PAD, dtype=torch.long)
    tokens[:, 0] = CLS
    for row, c in enumerate(chunks):
        tokens[row, 1 : 1 + len(c)] = torch.tensor(c, dtype=torch.long)
    return tokens.to(device), (tokens != PAD).long().to(device)
