"""Convolutional image classifiers: ``conv_pooling`` (conv stack → global pool → linear) and ``conv_fc``
(conv stack → flatten → MLP).

Both share the conv part of the config::

    {"data": {...},                       # families.image_data sub-space (sizes narrowed, see below)
     "conv": [{"channels": 16, "padding": "SAME"}, ...],   # 1..5 layers of 3x3 convolutions
     "stride_pattern": "all_2" | "2_then_1" | "1_then_2",
     "use_bias": true,                    # biases on the conv layers (dense layers and the head always have one)
     "activation": "relu",                # families.common activations (TaskSet weights)
     "init": {"name": "he_normal"}}       # kernel initializer of every layer; biases start at zero

``conv_pooling`` adds ``"pool": "mean" | "max" | "squared_mean"`` (global pool over H, W; ``squared_mean`` is
the mean of the squared activations); ``conv_fc`` adds ``"dense": [64, 32]`` (0..3 hidden widths).

Stride patterns: ``all_2`` every layer stride 2; ``2_then_1`` the first layer stride 2, the rest 1; ``1_then_2``
the first layer stride 1, the rest 2. Spatial size per layer: SAME → ``ceil(n / s)``, VALID → ``floor((n - 3) / s)
+ 1``, which needs ``n >= 3``: :meth:`validate` refuses VALID on a layer whose input is smaller than 3×3 (naming
``conv[i].padding``), and the sampler draws VALID only where it fits.

CPU budget (differs from TaskSet, whose batches reached 512 and whose inputs were 28×28/32×32 colour):
image sizes are narrowed to {8, 14, 16} (28×28 stride-1 stacks cost hundreds of MFLOPs per example), batch
logint[8, 128] (the shared image sub-space), channels logint[8, 64] per layer, and the sampler redraws a
config (up to 20 times, then keeps shrinking channels) until its analytic cost is at most
:data:`MAX_SAMPLED_FLOPS` per step. ``validate`` accepts any config of the space, costly or not.

Cost: params are exact. FLOPs per step ≈ 3 × forward × batch, where forward counts 2 FLOPs per multiply-add of
the convolutions and dense layers (bias adds, activations, pooling and the softmax are ignored) — backward is
taken as twice the forward.

Loss: mean softmax cross-entropy over the batch. Normalizer: :func:`families.common.classification_normalizer`
(for 10 classes: chance ≈ 7, a perfect model ≈ -3, divergence capped at 10).

Compiled-code reuse: the static key holds everything but the dataset and ``train_size`` (data-only fields).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, Callable

from families._lazy import LazyModule, jnp, nn, optax

from families import common, image_data
from families.base import ConfigError, Cost
from families.space import Bool, Int, ListOf, Struct, choices


_nets = LazyModule("families.nets.conv")


def __getattr__(name):  # the Flax modules live in families.nets.conv; still importable from here
    if name in ('ConvStack', 'ConvPoolNet', 'ConvFCNet'):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

KERNEL = 3
CHANNELS_RANGE = (8, 64)
DEPTH_RANGE = (1, 5)
DENSE_RANGE = (32, 128)
DENSE_DEPTH_RANGE = (0, 3)
STRIDE_PATTERNS = ("all_2", "2_then_1", "1_then_2")
PADDINGS = ("SAME", "VALID")
POOLS = ("mean", "max", "squared_mean")
IMAGE_SIZES = (8, 14, 16)
MAX_SAMPLED_FLOPS = 150e6
"""Sampled configs cost at most this many FLOPs per step (conv gradients run at roughly 5-20 GFLOP/s on a 2-core CPU)."""


# ----------------------------------------------------------------------------------------------- geometry

def strides_for(pattern: str, depth: int) -> list[int]:
    """Per-layer strides of a stride pattern for ``depth`` layers."""
    if pattern == "all_2":
        return [2] * depth
    if pattern == "2_then_1":
        return [2] + [1] * (depth - 1)
    if pattern == "1_then_2":
        return [1] + [2] * (depth - 1)
    raise ConfigError("stride_pattern", f"{pattern!r} is not one of {list(STRIDE_PATTERNS)}")


def out_size(n: int, stride: int, padding: str) -> int:
    """Spatial output size of a 3×3 convolution on an ``n``-wide input (TF/Flax SAME and VALID rules)."""
    if padding == "SAME":
        return -(-n // stride)
    return (n - KERNEL) // stride + 1


def spatial_sizes(config: Mapping[str, Any]) -> list[int]:
    """Spatial side length after the input and after each conv layer (``len(conv) + 1`` ints)."""
    sizes = [config["data"]["image_size"]]
    strides = strides_for(config["stride_pattern"], len(config["conv"]))
    for layer, s in zip(config["conv"], strides):
        sizes.append(out_size(sizes[-1], s, layer["padding"]))
    return sizes


# ----------------------------------------------------------------------------------------------- models


def _stack(static: Mapping[str, Any]) -> ConvStack:
    depth = len(static["conv"])
    return _nets.ConvStack(
        channels=tuple(layer["channels"] for layer in static["conv"]),
        strides=tuple(strides_for(static["stride_pattern"], depth)),
        paddings=tuple(layer["padding"] for layer in static["conv"]),
        use_bias=static["use_bias"],
        activation=common.activation_fn(static["activation"]),
        kernel_init=common.initializer_fn(static["init"]),
    )


@functools.lru_cache(maxsize=512)
def _functions(key: str):
    """``(init, loss, sample_batch, normalizer)`` for a static key (the family's static config as JSON)."""
    family, _, text = key.partition(":")
    static = json.loads(text)
    data = static["data"]
    kernel_init = common.initializer_fn(static["init"])
    if family == ConvPoolingFamily.name:
        net = _nets.ConvPoolNet(_stack(static), static["pool"], data["num_classes"], kernel_init)
    else:
        net = _nets.ConvFCNet(_stack(static), tuple(static["dense"]), data["num_classes"],
                        common.activation_fn(static["activation"]), kernel_init)
    shape = (1, data["image_size"], data["image_size"], image_data.CHANNELS)

    def init(rng):
        return net.init(rng, jnp.zeros(shape, jnp.float32))["params"]

    def loss(params, batch, key):
        del key  # deterministic model
        logits = net.apply({"params": params}, batch["image"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return jnp.mean(ce).astype(jnp.float32)

    sample_batch = image_data.make_sample_batch(data["batch_size"], data["center_data"])
    return init, loss, sample_batch, common.classification_normalizer(data["num_classes"])


# ----------------------------------------------------------------------------------------------- families

class _ConvFamily(image_data.ImageFamily):
    """The conv part shared by :class:`ConvPoolingFamily` and :class:`ConvFCFamily`."""

    version = 1

    def _extra_space(self) -> dict:
        raise NotImplementedError

    def _sample_extra(self, rng) -> dict:
        raise NotImplementedError

    def config_space(self) -> Struct:
        """The config space (see the module docstring)."""
        return Struct({
            "data": image_data.data_space(sizes=IMAGE_SIZES),
            "conv": ListOf(Struct({"channels": Int(*CHANNELS_RANGE), "padding": choices(PADDINGS)}),
                           *DEPTH_RANGE),
            "stride_pattern": choices(STRIDE_PATTERNS),
            "use_bias": Bool(),
            "activation": common.ACTIVATION_SPACE,
            "init": common.INITIALIZER_SPACE,
            **self._extra_space(),
        })

    def _sample_once(self, rng) -> dict:
        data = image_data.sample_data(rng, sizes=IMAGE_SIZES)
        depth = rng.linear_int(*DEPTH_RANGE)
        pattern = rng.choice(STRIDE_PATTERNS)
        strides = strides_for(pattern, depth)
        conv, n = [], data["image_size"]
        for s in strides:
            channels = rng.log_int(*CHANNELS_RANGE)
            padding = rng.choice(PADDINGS)
            if padding == "VALID" and n < KERNEL:
                padding = "SAME"
            conv.append({"channels": channels, "padding": padding})
            n = out_size(n, s, padding)
        return {
            "data": data, "conv": conv, "stride_pattern": pattern, "use_bias": rng.bool(0.5),
            "activation": common.sample_activation(rng), "init": common.sample_initializer(rng),
            **self._sample_extra(rng),
        }

    def sample(self, rng) -> dict:
        """Draw a config whose cost is at most :data:`MAX_SAMPLED_FLOPS` (redraws, then shrinks channels)."""
        for _ in range(20):
            config = self._sample_once(rng)
            if self.cost(config).flops_per_step <= MAX_SAMPLED_FLOPS:
                return config
        while self.cost(config).flops_per_step > MAX_SAMPLED_FLOPS:
            widest = max(range(len(config["conv"])), key=lambda i: config["conv"][i]["channels"])
            if config["conv"][widest]["channels"] == CHANNELS_RANGE[0]:
                break
            config["conv"][widest]["channels"] = max(CHANNELS_RANGE[0], config["conv"][widest]["channels"] // 2)
        return config

    def validate(self, config: Mapping[str, Any]) -> None:
        """Schema check, the dataset's allowed image sizes, and that every VALID layer gets at least 3×3."""
        super().validate(config)
        sizes = spatial_sizes(config)
        for i, layer in enumerate(config["conv"]):
            if layer["padding"] == "VALID" and sizes[i] < KERNEL:
                raise ConfigError(f"conv[{i}].padding",
                                  f"VALID needs an input of at least {KERNEL}x{KERNEL}, but layer {i} gets "
                                  f"{sizes[i]}x{sizes[i]}; use SAME")

    def _conv_cost(self, config) -> tuple[int, int, int, int]:
        """``(params, forward FLOPs per example, output channels, output side)`` of the conv stack."""
        sizes = spatial_sizes(config)
        cin, params, flops = image_data.CHANNELS, 0, 0
        for i, layer in enumerate(config["conv"]):
            cout = layer["channels"]
            params += KERNEL * KERNEL * cin * cout + (cout if config["use_bias"] else 0)
            flops += 2 * sizes[i + 1] ** 2 * KERNEL * KERNEL * cin * cout
            cin = cout
        return params, flops, cin, sizes[-1]

    def functions(self, key: str):
        """The four task functions of static key ``key``."""
        return _functions(key)


class ConvPoolingFamily(_ConvFamily):
    """Conv stack → global spatial pool (mean / max / squared mean) → linear → softmax cross-entropy."""

    name = "conv_pooling"

    def _extra_space(self) -> dict:
        return {"pool": choices(POOLS)}

    def _sample_extra(self, rng) -> dict:
        return {"pool": rng.choice(POOLS)}

    def cost(self, config: Mapping[str, Any]) -> Cost:
        """Exact parameter count; FLOPs ≈ 3 × batch × (conv + head multiply-adds × 2)."""
        params, flops, c, _ = self._conv_cost(config)
        classes = image_data.num_classes(config["data"])
        params += c * classes + classes
        flops += 2 * c * classes
        return Cost(params=params, flops_per_step=3 * config["data"]["batch_size"] * flops)

    def variant(self, config: Mapping[str, Any]) -> str:
        """``conv_pooling/<pool>``."""
        return f"{self.name}/{config['pool']}"


class ConvFCFamily(_ConvFamily):
    """Conv stack → flatten → 0..3 dense layers → linear → softmax cross-entropy."""

    name = "conv_fc"

    def _extra_space(self) -> dict:
        return {"dense": ListOf(Int(*DENSE_RANGE), *DENSE_DEPTH_RANGE)}

    def _sample_extra(self, rng) -> dict:
        return {"dense": [rng.log_int(*DENSE_RANGE) for _ in range(rng.linear_int(*DENSE_DEPTH_RANGE))]}

    def cost(self, config: Mapping[str, Any]) -> Cost:
        """Exact parameter count; FLOPs ≈ 3 × batch × (conv + dense multiply-adds × 2)."""
        params, flops, c, side = self._conv_cost(config)
        width = c * side * side
        for out in list(config["dense"]) + [image_data.num_classes(config["data"])]:
            params += width * out + out
            flops += 2 * width * out
            width = out
        return Cost(params=params, flops_per_step=3 * config["data"]["batch_size"] * flops)

    def variant(self, config: Mapping[str, Any]) -> str:
        """``conv_fc/<n>dense`` (number of hidden dense layers)."""
        return f"{self.name}/{len(config['dense'])}dense"
