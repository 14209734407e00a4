"""Fast generation: every layer keeps its past in a preallocated ring buffer, so a sample costs
O(layers) small matrix products instead of a forward pass over the receptive field.

A kernel-2 dilated layer needs, at sample t, only its input at t and at t - d. So each layer
keeps a ring buffer of d slots; slot t % d holds what sample t needs from sample t - d, and is
overwritten at step t with what sample t + d will need. The buffer stores that contribution
already multiplied by the past tap's weights (W_past x_l[t-d]), with every constant bias of
the gate folded in, so a layer step is exactly

    pre  = buffer[t % d] + x'_l @ W_cur                  one addmm, read before the write below
    buffer[t % d] = bias(t + d) + x'_l @ W_past            one addmm, written in place
    z    = tanh(pre_a) * (1 + tanh(pre_b))                 tanh_ + addcmul  (sigmoid via tanh)
    x'_{l+1} = x'_l + z @ W_res                            one addmm_

Folding (all exact algebra, done once per call):
- sigmoid(b) = (1 + tanh(b / 2)) / 2: the sigmoid half of every gate weight and bias is halved
  and the outer 1/2 is folded into W_res and W_skip, so one tanh covers both halves;
- the residual stream x_l = x'_l + c_l carries a constant c_l (the input bias plus earlier
  residual biases); W_cur c_l and W_past c_l are folded into the gate biases. A zero-padded
  past (before sample 0) is x_l = 0, not x'_l = 0, which is why the initial slots hold the bias
  without the W_past c_l term;
- the skip connections of all layers are one GEMM at the end over the concatenated gate
  outputs [B, L*D], and the conditioning bias of the sample that will read a slot is added
  when the slot is written, so no layer does a separate add.

Everything is a contiguous [B, C] tensor written in place (`out=`), there is no host sync per
sample (samples stay on the device), and the sampling noise is the same as naive_generate's,
so both paths give the same samples for the same seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from audiolm.models.wavenet.sampling import NOISE_CHUNK, GenerationInputs, GumbelNoise, prepare_inputs


class RingBufferState:
    """The folded weights and the per-layer ring buffers of one generation run."""

    def __init__(self, model, batch_size: int, inputs: GenerationInputs) -> None:
        cfg = model.config
        self.model, self.cfg, self.B = model, cfg, batch_size
        C, R, D, L, K = (
            cfg.quantization_channels,
            cfg.residual_channels,
            cfg.dilation_channels,
            cfg.layers,
            cfg.input_kernel_size,
        )
        G = 2 * D
        dev = model.device
        self.dilations = cfg.dilations
        scale = torch.cat([torch.ones(D, device=dev), torch.full((D,), 0.5, device=dev)])  # [G]

        # input convolution: one table of C+1 rows per lag (row C = the zero padding id)
        table = torch.zeros(K, C + 1, R, device=dev)
        table[:, :C] = model.input_weight
        self.table = table.view(K * (C + 1), R)
        # window row r holds x[t-K+r], i.e. lag K - r, whose table starts at (K-1-r)(C+1)
        self.lag_offsets = (torch.arange(K - 1, -1, -1, device=dev) * (C + 1)).view(K, 1)

        c = model.input_bias.detach().clone()  # the constant part of the residual stream
        self.W_cur, self.W_past, read_const, past_const = [], [], [], []
        for l, conv in enumerate(model.dilated):
            w = conv.weight * scale.view(G, 1, 1)  # [G, R, 2]: tap 0 -> x[t-d], tap 1 -> x[t]
            w_cur, w_past = w[:, :, 1].t().contiguous(), w[:, :, 0].t().contiguous()  # [R, G]
            self.W_cur.append(w_cur)
            self.W_past.append(w_past)
            read_const.append(conv.bias * scale + c @ w_cur)
            past_const.append(c @ w_past)
            if l < L - 1:
                c = c + model.residual[l].bias
        self.W_res = [(0.5 * r.weight[:, :, 0]).t().contiguous() for r in model.residual]  # [D, R]
        self.W_skip = torch.cat([(0.5 * s.weight[:, :, 0]).t() for s in model.skip], 0).contiguous()  # [L*D, S]
        self.b_skip = torch.stack([s.bias for s in model.skip]).sum(0)
        self.W_1, self.b_1 = model.post1.weight[:, :, 0].t().contiguous(), model.post1.bias
        self.W_2, self.b_2 = model.post2.weight[:, :, 0].t().contiguous(), model.post2.bias

        # per-frame gate biases of every layer: [F, L, B, G] (F = 1 without local conditioning)
        if inputs.bias is None:
            cond = torch.zeros(1, L, batch_size, G, device=dev)
        else:
            frames = inputs.bias.shape[-1]
            cond = inputs.bias.expand(batch_size, -1, -1).permute(2, 0, 1).reshape(frames, batch_size, L, G)
            cond = cond.transpose(1, 2) * scale
        self.read_bias = (cond + torch.stack(read_const).view(1, L, 1, G)).contiguous()
        self.write_bias = (self.read_bias + torch.stack(past_const).view(1, L, 1, G)).contiguous()
        self.write_views = [f.unbind(0) for f in self.write_bias.unbind(0)]  # [F][L] -> [B, G]
        self.n_frames = self.read_bias.shape[0]
        self.hop = cfg.lc_hop if cfg.has_lc else None

        self.buffers = [torch.empty(d, batch_size, G, device=dev) for d in self.dilations]
        self.slots = [buf.unbind(0) for buf in self.buffers]  # per layer, d views [B, G]

    def prefill(self, prompt: torch.Tensor, inputs: GenerationInputs) -> None:
        """Fill the ring buffers as if samples 0..P-1 (= prompt [B, P]) had been generated."""
        P = prompt.shape[1]
        window_start = max(0, P - (self.cfg.receptive_field + max(self.dilations)))
        layer_inputs = []
        if P > 0:
            window = prompt[:, window_start:]
            cond = self.model.conditioning.at_samples(inputs.bias, window_start, window.shape[1])
            layer_inputs = self.model.run_layers(window, cond, keep_inputs=True)[1]  # [B, R, Tw] each
        dev = self.table.device
        for l, d in enumerate(self.dilations):
            # the slot read at sample tau (P <= tau < P + d) holds bias(tau) + W_past x_l[tau - d]
            taus = torch.arange(P, P + d, device=dev)
            frames = torch.zeros_like(taus) if self.hop is None else (taus // self.hop).clamp(max=self.n_frames - 1)
            values = self.read_bias[:, l].index_select(0, frames).clone()  # [d, B, G]
            past = taus - d
            have = past >= 0
            if bool(have.any()):
                x_past = layer_inputs[l][:, :, past[have] - window_start]  # [B, R, n]
                values[have] += x_past.permute(2, 0, 1) @ self.W_past[l]
            self.buffers[l][taus % d] = values

    def run(
        self,
        ids: torch.Tensor,
        start: int,
        total: int,
        noise_source: GumbelNoise,
        temperature: float,
        callback: Callable[[torch.Tensor, int], None] | None,
        callback_every: int,
    ) -> None:
        """Generate samples start..total-1 into `ids` (time-major [K + total, B], the first K
        rows padding), reading x[t-K..t-1] from rows t..t+K-1 and writing x[t] to row K + t."""
        K, B, L = self.cfg.input_kernel_size, self.B, self.cfg.layers
        R, D, S, C = (
            self.cfg.residual_channels,
            self.cfg.dilation_channels,
            self.cfg.skip_channels,
            self.cfg.quantization_channels,
        )
        dev = self.table.device
        xs = torch.empty(B, R, device=dev)
        gathered = torch.empty(K * B, R, device=dev)
        pre = [torch.empty(B, 2 * D, device=dev) for _ in range(L)]
        ta = [p[:, :D] for p in pre]
        tb = [p[:, D:] for p in pre]
        zs = torch.empty(B, L * D, device=dev)
        z = [zs[:, l * D : (l + 1) * D] for l in range(L)]
        h1, h2, logits = torch.empty(B, S, device=dev), torch.empty(B, S, device=dev), torch.empty(B, C, device=dev)
        # bind everything the loop touches to locals: this loop is the hot path
        table, lag_offsets, slots, write_views = self.table, self.lag_offsets, self.slots, self.write_views
        W_cur, W_past, W_res = self.W_cur, self.W_past, self.W_res
        W_skip, b_skip, W_1, b_1, W_2, b_2 = self.W_skip, self.b_skip, self.W_1, self.b_1, self.W_2, self.b_2
        dilations, last = self.dilations, L - 1
        hop, last_frame = self.hop, self.n_frames - 1
        addmm, addcmul, index_select, argmax, tsum = (
            torch.addmm,
            torch.addcmul,
            torch.index_select,
            torch.argmax,
            torch.sum,
        )
        layer_range = list(zip(range(L), dilations))
        noise_rows: tuple[torch.Tensor, ...] = ()
        for i, t in enumerate(range(start, total)):
            if i % NOISE_CHUNK == 0 and temperature > 0:
                noise_rows = noise_source.chunk().unbind(0)
            index_select(table, 0, (ids[t : t + K] + lag_offsets).view(-1), out=gathered)
            tsum(gathered.view(K, B, R), 0, out=xs)
            for l, d in layer_range:
                slot = slots[l][t % d]
                addmm(slot, xs, W_cur[l], out=pre[l])
                f = 0 if hop is None else min((t + d) // hop, last_frame)
                addmm(write_views[f][l], xs, W_past[l], out=slot)
                pre[l].tanh_()
                addcmul(ta[l], ta[l], tb[l], out=z[l])
                if l < last:
                    xs.addmm_(z[l], W_res[l])
            addmm(b_skip, zs, W_skip, out=h1).relu_()
            addmm(b_1, h1, W_1, out=h2).relu_()
            addmm(b_2, h2, W_2, out=logits)
            if temperature > 0:
                logits.add_(noise_rows[i % NOISE_CHUNK], alpha=temperature)
            argmax(logits, 1, out=ids[K + t])
            if callback is not None and callback_every and (i + 1) % callback_every == 0:
                callback(ids[K:].t(), t + 1)


@torch.inference_mode()
def fast_generate(
    model,
    n_samples: int,
    *,
    batch_size: int = 1,
    prompt: torch.Tensor | None = None,
    gc: torch.Tensor | int | None = None,
    codes: torch.Tensor | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    callback: Callable[[torch.Tensor, int], None] | None = None,
    callback_every: int = 0,
) -> torch.Tensor:
    """Returns ids [B, P + n_samples] (see WaveNet.generate)."""
    inputs = prepare_inputs(model, n_samples, batch_size, prompt, gc, codes, temperature)
    cfg = model.config
    K, P = cfg.input_kernel_size, inputs.prompt.shape[1]
    state = RingBufferState(model, batch_size, inputs)
    state.prefill(inputs.prompt, inputs)
    ids = torch.full((K + inputs.total, batch_size), cfg.quantization_channels, dtype=torch.long, device=model.device)
    ids[K : K + P] = inputs.prompt.t()
    noise = GumbelNoise(seed, batch_size, cfg.quantization_channels, model.device)
    with cpu_threads(1 if model.device.type == "cpu" else None):
        state.run(ids, P, inputs.total, noise, temperature, callback, callback_every)
    return ids[K:].t().contiguous()


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the per-sample loop on one CPU thread. Its matrices ([B, 64] x [64, 128]) are far
    too small to split, so a second thread only adds a synchronisation per op — and when the
    cores are shared, every op then waits for a descheduled thread (tens of times slower)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
