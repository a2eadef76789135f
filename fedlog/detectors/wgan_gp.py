"""WGAN-GP (Gulrajani et al.; GANFL eq. 1-2) over flat feature vectors.

The critic ends in a linear unit (no sigmoid: it estimates a Wasserstein distance, not a
probability); its loss is E[D(fake)] - E[D(real)] + lambda_gp E[(||grad D(x_hat)|| - 1)^2]
at random interpolates x_hat between real and generated samples; the generator minimises
-E[D(G(z))]; the critic takes ``n_critic`` steps per generator step. Adam with
lr 1e-4 and betas (0, 0.9), as in the WGAN-GP paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    act = nn.LeakyReLU(0.2)
    return nn.Sequential(nn.Linear(n_in, hidden), act, nn.Linear(hidden, hidden), act, nn.Linear(hidden, n_out))


class WGANGP(nn.Module):
    """Generator noise -> feature vector, and a critic feature vector -> unbounded score."""

    def __init__(self, dim: int, noise: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.noise = noise
        self.generator = _mlp(noise, hidden, dim)
        self.critic = _mlp(dim, hidden, 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.noise, generator=generator).to(device)
        return self.generator(z)


def critic_gradient_norm(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor):
    """||grad_x D(x_hat)||_2 per sample at x_hat = alpha real + (1 - alpha) fake."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return grad.flatten(1).norm(dim=1)


@dataclass
class GANHistory:
    """What a user checks that the GAN learned: losses, gradient norms at interpolates, and the
    distance of the generated mean to the real (anomaly) mean."""

    critic_loss: list[float] = field(default_factory=list)
    generator_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    mean_distance: list[float] = field(default_factory=list)


def train_wgan_gp(
    gan: WGANGP,
    real: torch.Tensor,
    steps: int,
    n_critic: int = 5,
    lambda_gp: float = 10.0,
    batch_size: int = 64,
    lr: float = 1e-4,
    rng: torch.Generator | None = None,
    history: GANHistory | None = None,
) -> GANHistory:
    """``steps`` generator steps (each after ``n_critic`` critic steps) on the rows of ``real``."""
    history = history or GANHistory()
    opt_c = torch.optim.Adam(gan.critic.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(0.0, 0.9))
    device = real.device
    target_mean = real.mean(0)
    gan.train()
    for _ in range(steps):
        for _ in range(n_critic):
            batch = real[torch.randint(len(real), (batch_size,), generator=rng).to(device)]
            with torch.no_grad():
                fake = gan.sample(batch_size, rng)
            alpha = torch.rand(batch_size, 1, generator=rng).to(device)
            norms = critic_gradient_norm(gan.critic, batch, fake, alpha)
            wasserstein = gan.critic(fake).mean() - gan.critic(batch).mean()
            loss_c = wasserstein + lambda_gp * ((norms - 1) ** 2).mean()
            opt_c.zero_grad()
            loss_c.backward()
            opt_c.step()
        fake = gan.sample(batch_size, rng)
        loss_g = -gan.critic(fake).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        history.critic_loss.append(loss_c.item())
        history.generator_loss.append(loss_g.item())
        history.grad_norm.append(norms.mean().item())
        history.mean_distance.append((fake.detach().mean(0) - target_mean).norm().item())
    return history
