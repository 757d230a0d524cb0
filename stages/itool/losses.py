"""Stage 06's preference losses, as pure functions of each pair's summed log-probs.

Every loss takes tensors [B], one entry per pair: the summed log-probs of the chosen and of the
rejected completion under the policy, and either the same sums under the reference (DPO, IPO) or
the completions' token counts (SimPO, ORPO). It returns (loss per pair, reward of chosen, reward
of rejected); a pair is ranked right when its chosen reward is the higher.

  dpo    paper Eq. 11 (Rafailov et al., 2023)   -log σ(β·log π/π_ref(y_w) - β·log π/π_ref(y_l))
  ipo    Azar et al., 2024                      (log-ratio margin - 1/(2τ))²
  simpo  Meng et al., 2024, no reference        -log σ(β·mean log π(y_w) - β·mean log π(y_l) - γ)
  orpo   Hong et al., 2024, no reference        mean NLL(y_w) - λ·log σ(log odds(y_w) - log odds(y_l))

Also the extra NLL term of "DPO + NLL" (Pang et al., 2024), how a micro-batch's share of an
optimizer step is summed, and cut_rejected, the rejected step cut to its chosen step's length
(stages/06_dpo.py says why each is there).
"""
import math

import torch
import torch.nn.functional as F

# Each loss's usual strength (DPO/SimPO β, IPO τ, ORPO λ) when --beta is left out.
DEFAULT_BETA = {"dpo": 0.1, "simpo": 2.5, "ipo": 0.1, "orpo": 0.1}
# The extra NLL weight when --nll-weight is left out: DPO + NLL is this project's DPO (the paper's
# plain Eq. 11 is weight 0); the others run as their papers define them (ORPO's SFT term is part of
# ORPO, not this extra).
DEFAULT_NLL_WEIGHT = {"dpo": 1.0, "simpo": 0.0, "ipo": 0.0, "orpo": 0.0}
NEEDS_REFERENCE = {"dpo", "ipo"}


def dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta):
    """Paper Eq. 11: the rewards are β·log π/π_ref of each completion."""
    reward_chosen = beta * (chosen - ref_chosen)
    reward_rejected = beta * (rejected - ref_rejected)
    return -F.logsigmoid(reward_chosen - reward_rejected), reward_chosen, reward_rejected


def ipo_loss(chosen, rejected, ref_chosen, ref_rejected, tau):
    """IPO: regress the log-ratio margin onto 1/(2τ) instead of pushing it up without bound.
    Rewards are τ·log π/π_ref, reported like DPO's."""
    ratio_chosen, ratio_rejected = chosen - ref_chosen, rejected - ref_rejected
    loss = (ratio_chosen - ratio_rejected - 1 / (2 * tau)) ** 2
    return loss, tau * ratio_chosen, tau * ratio_rejected


def simpo_loss(chosen, rejected, n_chosen, n_rejected, beta, gamma):
    """SimPO: no reference; the reward is β·(mean token log-prob), and the chosen one must beat the
    rejected one by the margin γ."""
    reward_chosen = beta * chosen / n_chosen
    reward_rejected = beta * rejected / n_rejected
    return -F.logsigmoid(reward_chosen - reward_rejected - gamma), reward_chosen, reward_rejected


def log1mexp(x):
    """log(1 - e^x) for x < 0, accurate both near 0 and far below it (Mächler, 2012)."""
    x = x.clamp(max=-1e-7)  # a mean log-prob of exactly 0 (P = 1) would give infinite odds
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo_loss(chosen, rejected, n_chosen, n_rejected, lam):
    """ORPO: its SFT term, the chosen completion's mean token NLL, plus λ·-log σ(log odds(y_w) -
    log odds(y_l)), with odds(y) = P/(1-P) and P the mean-token probability. Rewards are
    λ·(mean token log-prob)."""
    mean_chosen, mean_rejected = chosen / n_chosen, rejected / n_rejected
    log_odds = (mean_chosen - log1mexp(mean_chosen)) - (mean_rejected - log1mexp(mean_rejected))
    return -mean_chosen - lam * F.logsigmoid(log_odds), lam * mean_chosen, lam * mean_rejected


def preference_loss(name, beta, gamma, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected):
    """The loss `name` (dpo, ipo, simpo, orpo) of each pair: (losses, rewards of chosen, of rejected).
    `beta` is its strength (β, τ or λ), `gamma` SimPO's margin."""
    if name == "dpo":
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)
    if name == "ipo":
        return ipo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)
    if name == "simpo":
        return simpo_loss(chosen, rejected, n_chosen, n_rejected, beta, gamma)
    if name == "orpo":
        return orpo_loss(chosen, rejected, n_chosen, n_rejected, beta)
    raise ValueError(f"unknown loss {name!r}")


def nll_loss(chosen, n_chosen_tokens):
    """The chosen completions' negative log-likelihood per token: their summed log-probs [B] over the
    number of chosen tokens in the whole optimizer step, so that accumulated micro-batches add up to it."""
    return -chosen.sum() / n_chosen_tokens


def step_loss(name, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected, n_pairs, n_chosen_tokens, *,
              beta, gamma=0.0, nll_weight=0.0):
    """A micro-batch's share of its optimizer step's loss: its pairs' losses over the step's pair
    count `n_pairs`, plus `nll_weight` times the chosen tokens' NLL over the step's chosen-token count
    (an extra term that no published loss but DPO + NLL has). Dividing by the whole step's counts,
    not the micro-batch's, makes unevenly filled micro-batches add up to one big batch's loss.
    Returns (loss, nll, rewards of chosen, rewards of rejected)."""
    losses, reward_chosen, reward_rejected = preference_loss(
        name, beta, gamma, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected)
    nll = nll_loss(chosen, n_chosen_tokens)
    loss = losses.sum() / n_pairs + (nll_weight * nll if nll_weight else 0.0)
    return loss, nll, reward_chosen, reward_rejected


def reward_margin(reward_chosen, reward_rejected):
    return reward_chosen - reward_rejected


def reward_accuracy(reward_chosen, reward_rejected):
    """Per pair, whether it is ranked right (bool)."""
    return reward_chosen > reward_rejected


def cut_rejected(chosen, rejected):
    """The rejected ids cut to the chosen's length, but never before their first difference from
    the chosen (kept, so that the cut pair still tells the two apart)."""
    parted = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)))
    return rejected[:max(len(chosen), parted + 1)]
