"""The update step of every architecture: a base class with the shared parts (optimisers,
learning rate, per-rank generators, bf16 autocast, checkpoint state) and DeblurGAN's update."""

from __future__ import annotations

import torch

from .._rng import sample_rng
from .losses import critic_loss

STREAM_TORCH = 3  # sample_rng stream of the torch generators (data uses 1 and 2)


def lr_at(step: int, total: int, base: float) -> float:
    """Constant for the first half of the run, then linear decay to 0 at ``total``.

    Examples
    --------
    >>> [lr_at(s, 10, 1.0) for s in (0, 4, 5, 8, 10)]
    [1.0, 1.0, 1.0, 0.4, 0.0]
    """
    half = total / 2
    if step < half:
        return base
    return base * max(total - step, 0) / max(total - half, 1)


class UpdateBase:
    """What every architecture's update shares; a subclass writes :meth:`step`.

    Parameters
    ----------
    generator : nn.Module
    critic : nn.Module or None
        Either possibly wrapped in DistributedDataParallel; None for an architecture without
        a critic (no critic optimiser is made, its checkpoint entries are None).
    content : nn.Module or None
        The content loss the run built (the architecture's ``content`` or ``--perceptual``).
    lr, critic_steps, content_weight : as ``blursynth train``
    seed, rank : int
        Key this process's torch generators (``RNG_NAMES``), so each rank draws differently
        and reproducibly; they are checkpointed per rank.
    amp : bool
        bf16 autocast around forward passes and losses.

    Class attributes a subclass may change: ``OPTIMIZER`` (a torch.optim class), ``BETAS``,
    ``WEIGHT_DECAY`` and ``RNG_NAMES`` (its generators, ``self.rngs[name]``; the first two
    names keep DeblurGAN's draws).
    """

    OPTIMIZER = torch.optim.Adam
    BETAS = (0.5, 0.999)
    WEIGHT_DECAY = 0.0
    RNG_NAMES = ("gp", "dropout")

    def __init__(self, generator, critic, content, *, lr=1e-4, critic_steps=5,
                 content_weight=100.0, seed=0, rank=0, amp=False):
        self.g, self.d, self.content = generator, critic, content
        self.critic_steps = int(critic_steps)
        self.content_weight = float(content_weight)
        if critic is None and self.critic_steps:
            raise ValueError("critic_steps must be 0 for an architecture without a critic.")
        self.opt_g = self.make_optimizer(generator.parameters(), lr)
        self.opt_d = None if critic is None else self.make_optimizer(critic.parameters(), lr)
        device = next(generator.parameters()).device
        self.device = device
        # Keyed by (seed, rank): each rank masks and mixes differently, reproducibly.
        keys = sample_rng(seed, rank, STREAM_TORCH).integers(0, 2**62, size=len(self.RNG_NAMES))
        self.rngs = {name: torch.Generator(device=device).manual_seed(int(k))
                     for name, k in zip(self.RNG_NAMES, keys)}
        dropout_rng = self.rngs.get("dropout")
        for m in unwrap(generator).modules():
            if hasattr(m, "generator") and type(m).__name__ == "SeededDropout":
                m.generator = dropout_rng
        self.amp = bool(amp)
        self.g_params = [p for p in generator.parameters() if p.requires_grad]

    def make_optimizer(self, params, lr):
        """The optimiser of the generator and of the critic."""
        kwargs = {"lr": lr, "betas": self.BETAS}
        if self.WEIGHT_DECAY:
            kwargs["weight_decay"] = self.WEIGHT_DECAY
        return self.OPTIMIZER(params, **kwargs)

    @property
    def optimizers(self):
        return [o for o in (self.opt_g, self.opt_d) if o is not None]

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def set_lr(self, lr):
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def step(self, blurred, sharp) -> dict:
        """One update on a batch of ``(B, 3, H, W)`` images in [-1, 1] (a multi-scale
        architecture builds its own pyramid of them, the one its generator builds at inference);
        returns the losses, keyed by the architecture's ``loss_columns`` (NaN for a loss not
        computed)."""
        raise NotImplementedError

    def content_step(self, fake, sharp):
        """One generator update on the content loss alone; returns ``(loss_g, loss_content)``."""
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            loss_content = self.content(fake, sharp)
            loss_g = self.content_weight * loss_content
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return loss_g, loss_content

    def state_dict(self) -> dict:
        return {
            "generator": unwrap(self.g).state_dict(),
            "critic": None if self.d is None else unwrap(self.d).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": None if self.opt_d is None else self.opt_d.state_dict(),
            "rng": self.rng_state(),
        }

    def rng_state(self) -> dict:
        """States of this process's torch generators, by name."""
        return {name: g.get_state() for name, g in self.rngs.items()}

    def load_state_dict(self, state, *, rank: int = 0) -> None:
        """Restore weights, optimisers and this rank's generators from a checkpoint.

        A checkpoint of a distributed run holds every rank's generator states
        (``rng_ranks``); a rank with none saved (more ranks than the run that
        saved) keeps its fresh ``(seed, rank)`` streams rather than copy another
        rank's, which would give two ranks the same masks.
        """
        unwrap(self.g).load_state_dict(state["generator"])
        if self.d is not None:
            unwrap(self.d).load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        ranks = state.get("rng_ranks")
        if ranks is not None:
            rng = ranks[rank] if rank < len(ranks) else None
        else:
            rng = state["rng"] if rank == 0 else None
        if rng is not None:
            for name, g in self.rngs.items():
                g.set_state(rng[name])


class RelativisticUpdate(UpdateBase):
    """``critic_steps`` critic updates on a relativistic loss (sharp images real, generated ones
    fake), then one generator update on ``content_weight x content + ADV_WEIGHT x the
    generator's relativistic loss``; DeblurGAN-v2 (RaLSGAN) and DBGAN differ only in the losses,
    the weight and whether the critic scores at several scales.

    Subclasses set ``ADV_WEIGHT`` and the two losses as static methods, ``critic_loss(real,
    fake)`` and ``generator_loss(real, fake)`` of score tensors. A critic may return one score
    tensor or a list (one per scale): the losses are averaged over the list. Nothing in a step is
    random (no dropout, no penalty), so it keeps no torch generators.
    """

    BETAS = (0.9, 0.999)
    RNG_NAMES = ()
    ADV_WEIGHT = 0.0

    @staticmethod
    def critic_loss(real, fake):
        raise NotImplementedError

    @staticmethod
    def generator_loss(real, fake):
        raise NotImplementedError

    def step(self, blurred, sharp) -> dict:
        def scales(scores):
            return scores if isinstance(scores, (list, tuple)) else [scores]

        self.g.train()
        self.d.train()
        with self._autocast():
            fake = self.g(blurred)
        nan = float("nan")
        if self.critic_steps == 0:
            loss_g, loss_content = self.content_step(fake, sharp)
            return {"loss_d": nan, "loss_g": loss_g.item(), "loss_adv": nan,
                    "loss_content": loss_content.item()}
        b = sharp.shape[0]
        fake_d = fake.detach()
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                # One forward over real and generated (InstanceNorm is per sample): one DDP
                # forward per backward.
                scores = scales(self.d(torch.cat([sharp, fake_d])))
                loss_d = sum(self.critic_loss(s[:b], s[b:]) for s in scores) / len(scores)
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        critic = unwrap(self.d)
        with self._autocast():
            with torch.no_grad():
                real_scores = scales(critic(sharp))
            fake_scores = scales(critic(fake))
            loss_adv = sum(self.generator_loss(r, f)
                           for r, f in zip(real_scores, fake_scores)) / len(fake_scores)
            loss_content = self.content(fake, sharp)
            loss_g = self.content_weight * loss_content + self.ADV_WEIGHT * loss_adv
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}


class Trainer(UpdateBase):
    """DeblurGAN's update per :meth:`step`: ``critic_steps`` critic updates on the batch and
    the generator's output for it (as DeblurGAN does), then one generator update.

    Parameters
    ----------
    generator, critic : nn.Module
        Possibly wrapped in DistributedDataParallel.
    content : ContentLoss
    gp_weight : float
        Weight of the critic's gradient penalty (WGAN-GP).
    seed, rank : int
        Key the generators of the penalty's mixing weights and of dropout masks.
    """

    def __init__(self, generator, critic, content, *, lr=1e-4, critic_steps=5, gp_weight=10.0,
                 content_weight=100.0, seed=0, rank=0, amp=False):
        super().__init__(generator, critic, content, lr=lr, critic_steps=critic_steps,
                         content_weight=content_weight, seed=seed, rank=rank, amp=amp)
        self.gp_weight = float(gp_weight)
        self.rng_gp, self.rng_dropout = self.rngs["gp"], self.rngs["dropout"]

    def step(self, blurred, sharp) -> dict:
        """One update on a batch of ``(B, 3, H, W)`` images in [-1, 1]; returns the losses.

        With ``critic_steps=0`` the generator learns from the content loss alone (the critic
        is neither run nor updated; its losses are NaN): PSNR-oriented training.
        """
        self.g.train()
        self.d.train()
        with self._autocast():
            fake = self.g(blurred)
        if self.critic_steps == 0:
            loss_g, loss_content = self.content_step(fake, sharp)
            nan = float("nan")
            return {"loss_d": nan, "wasserstein": nan, "gp": nan, "loss_g": loss_g.item(),
                    "loss_adv": nan, "loss_content": loss_content.item()}
        fake_d = fake.detach()
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                loss_d, wdist, gp = critic_loss(self.d, sharp, fake_d, generator=self.rng_gp,
                                                gp_weight=self.gp_weight)
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            # The critic is run unwrapped and only the generator's parameters receive
            # gradients, so DDP's critic sees exactly one backward per forward.
            loss_adv = -unwrap(self.d)(fake).float().mean()
            loss_content = self.content(fake, sharp)
            loss_g = loss_adv + self.content_weight * loss_content
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "wasserstein": wdist.item(), "gp": gp.item(),
                "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper (the module itself when unwrapped)."""
    return getattr(module, "module", module)
