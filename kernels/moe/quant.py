"""Expert weight formats and their plain-torch quantise/dequantise helpers.

An expert projection is stacked over experts as [E, N, K] (N outputs, K inputs: nn.Linear's
[out, in] rows; gate_up_proj is [E, 2I, H] with the gate rows first, down_proj is [E, H, I]).
Formats, all symmetric, all dequantised in registers by the grouped GEMM:
- "float": data bf16/fp16/fp32 [E, N, K], no scale.
- "int8":  data int8 [E, N, K] in [-127, 127]; scale [E, N], w = data * scale (per output channel).
- "int4":  data uint8 [E, N, K/2]: two 4-bit two's-complement values per byte, the even input
           index k = 2j in the low nibble, k = 2j + 1 in the high nibble, values in [-7, 7];
           scale [E, N, ceil(K/128)], w[e, n, k] = value * scale[e, n, k // 128] (groups of 128
           along the input dim, the last group possibly shorter). K must be even.
- "fp8":   data float8_e4m3fn [E, N, K]; scale [E, ceil(N/128), ceil(K/128)] fp32 multipliers
           (the checkpoints' `weight_scale_inv`), w = data * scale[e, n // 128, k // 128].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP = 128
FORMATS = ("float", "int8", "int4", "fp8")
FP8_MAX = 448.0


@dataclass(frozen=True)
class ExpertWeights:
    """One stacked expert projection [E, N, K] in one of FORMATS (see the module docstring)."""

    format: str
    data: torch.Tensor
    scale: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        E, N, Kd = self.data.shape
        return E, N, Kd * 2 if self.format == "int4" else Kd

    @property
    def name(self) -> str:
        """The format as the tile configs key it: bf16/fp16/fp32 for "float", else the format."""
        if self.format != "float":
            return self.format
        names = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
        return names[self.data.dtype]

    def to(self, device: torch.device | str) -> ExpertWeights:
        """The same weights on another device."""
        scale = None if self.scale is None else self.scale.to(device)
        return ExpertWeights(self.format, self.data.to(device), scale)

    def validate(self, what: str) -> None:
        """Raise ValueError unless data and scale have the dtypes and shapes of the format."""
        if self.format not in FORMATS:
            raise ValueError(f"{what}: unknown expert format {self.format!r}")
        if self.data.dim() != 3:
            raise ValueError(f"{what}: expected data [E, N, K], got {tuple(self.data.shape)}")
        E, N, K = self.shape
        data_dtype = {
            "float": (torch.bfloat16, torch.float16, torch.float32),
            "int8": (torch.int8,),
            "int4": (torch.uint8,),
            "fp8": (torch.float8_e4m3fn,),
        }[self.format]
        if self.data.dtype not in data_dtype:
            raise ValueError(
                f"{what}: {self.format} data must be {data_dtype}, got {self.data.dtype}"
            )
        scale_shape = {
            "float": None,
            "int8": (E, N),
            "int4": (E, N, -(-K // GROUP)),
            "fp8": (E, -(-N // GROUP), -(-K // GROUP)),
        }[self.format]
        got = None if self.scale is None else tuple(self.scale.shape)
        if got != scale_shape:
            raise ValueError(
                f"{what}: {self.format} scale must have shape {scale_shape}, got {got}"
            )
        if self.scale is not None and not self.scale.is_floating_point():
            raise ValueError(f"{what}: scale must be a float tensor, got {self.scale.dtype}")


def as_expert_weights(w: torch.Tensor | ExpertWeights) -> ExpertWeights:
    return w if isinstance(w, ExpertWeights) else ExpertWeights("float", w)


def quantize(
    w: torch.Tensor, fmt: str, scale_dtype: torch.dtype = torch.float32
) -> ExpertWeights:
    """w [E, N, K] float -> ExpertWeights in `fmt` (absmax scales; zero rows get scale 1)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown expert format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if w.dim() != 3 or not w.is_floating_point():
        raise ValueError(f"expected a float [E, N, K] weight, got {w.dtype} {tuple(w.shape)}")
    if fmt == "float":
        return ExpertWeights("float", w)
    E, N, K = w.shape
    wf = w.float()
    if fmt == "int8":
        scale = _absmax_scale(wf.abs().amax(-1), 127.0, scale_dtype)
        data = torch.round(wf / scale[..., None]).clamp(-127, 127).to(torch.int8)
        return ExpertWeights("int8", data, scale.to(scale_dtype))
    if fmt == "int4":
        if K % 2:
            raise ValueError(f"int4 packs two inputs per byte: K must be even, got {K}")
        G = -(-K // GROUP)
        # [E, N, G, GROUP]: zero padding of the last group does not change its absmax
        groups = torch.nn.functional.pad(wf, (0, G * GROUP - K)).view(E, N, G, GROUP)
        scale = _absmax_scale(groups.abs().amax(-1), 7.0, scale_dtype)
        q = torch.round(groups / scale[..., None]).clamp(-7, 7).view(E, N, G * GROUP)[..., :K]
        nib = q.to(torch.int16) & 0xF
        data = (nib[..., 0::2] | (nib[..., 1::2] << 4)).to(torch.uint8)
        return ExpertWeights("int4", data, scale.to(scale_dtype))
    nb, kb = -(-N // GROUP), -(-K // GROUP)
    # [E, nb, 128, kb, 128] blocks
    blocks = torch.nn.functional.pad(wf, (0, kb * GROUP - K, 0, nb * GROUP - N))
    blocks = blocks.view(E, nb, GROUP, kb, GROUP)
    scale = _absmax_scale(blocks.abs().amax(dim=(2, 4)), FP8_MAX, scale_dtype)
    q = (blocks / scale[:, :, None, :, None]).clamp(-FP8_MAX, FP8_MAX)
    data = q.view(E, nb * GROUP, kb * GROUP)[:, :N, :K].to(torch.float8_e4m3fn)
    return ExpertWeights("fp8", data.contiguous(), scale.to(scale_dtype))


def _absmax_scale(amax: torch.Tensor, qmax: float, dtype: torch.dtype) -> torch.Tensor:
    """fp32 scales already rounded to the dtype they are stored in, so that the values are
    quantised against the scale the GEMM will multiply by."""
    return torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).to(dtype).float()


def unpack_int4(data: torch.Tensor) -> torch.Tensor:
    """uint8 [..., K/2] -> int8 [..., K] values in [-8, 7] (low nibble first)."""
    lo = (data & 0xF).to(torch.int8)
    hi = (data >> 4).to(torch.int8)
    both = torch.stack([lo, hi], dim=-1).flatten(-2)
    return torch.where(both >= 8, both - 16, both)


def dequantize(w: ExpertWeights, expert: int | None = None) -> torch.Tensor:
    """Float32 weights [E, N, K], or [N, K] of one expert (the naive path goes expert by expert)."""
    pick = slice(None) if expert is None else slice(expert, expert + 1)
    data = w.data[pick]
    scale = None if w.scale is None else w.scale[pick]
    if w.format == "float":
        out = data.float()
    elif w.format == "int8":
        out = data.float() * scale.float()[..., None]
    elif w.format == "int4":
        q = unpack_int4(data).float()
        out = q * scale.float().repeat_interleave(GROUP, dim=-1)[..., : q.shape[-1]]
    else:
        N, K = data.shape[1], data.shape[2]
        s = scale.float().repeat_interleave(GROUP, dim=1).repeat_interleave(GROUP, dim=2)
        out = data.float() * s[:, :N, :K]
    return out if expert is None else out[0]
