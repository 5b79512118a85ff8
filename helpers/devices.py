"""The hardware a run uses: a GPU or the CPU, mixed precision, XLA, several GPUs.

Every notebook's setup cell calls `prepare(cfg)`: it says what TensorFlow sees, sets
determinism when the config asks for it and, for a profile sized for a GPU, stops at
once when the GPU is missing, instead of running for hours on the CPU. A GPU below
compute capability 7.0 (Kaggle's P100) runs in float32; several run side by side.
"""

from __future__ import annotations

import importlib.util
import os

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Config

ALLOW_CPU = "CAPTION_ALLOW_CPU"
# The flickr8k series on 2 CPU cores, projected by benchmarks/flickr8k_scale.py.
CPU_HOURS = 10
# Mixed precision pays off from Volta (compute capability 7.0, tensor cores) on.
MIXED_PRECISION_CAPABILITY = (7, 0)
# Whether XLA (jit_compile) makes each job faster, per device type: benchmarks/xla.py
# prints both on the device at hand. 2 CPU cores, flickr8k-cpu sizes:
# training steps 0.82-0.88x with XLA (slower), greedy decoding 1.32-1.36x and beam 3
# 1.13-1.16x (faster; compiling adds under a second). GPUs: XLA fuses the many small
# per-word ops of the attention step; not measured here (no GPU): run the benchmark.
XLA_BY_DEVICE = {
    "CPU": {"training": False, "decoding": True},
    "GPU": {"training": True, "decoding": True},
}


def gpus() -> list:
    """The GPUs TensorFlow sees."""
    return tf.config.list_physical_devices("GPU")


def use_xla(job: str) -> bool:
    """Whether to compile `job` ("training" or "decoding") with XLA on this device."""
    return XLA_BY_DEVICE["GPU" if gpus() else "CPU"][job]


def _details(gpu) -> dict:
    return tf.config.experimental.get_device_details(gpu)


def _capability() -> tuple[int, int] | None:
    """The lowest compute capability of the GPUs here (None without a GPU)."""
    found = [_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus()]
    return min(found) if found else None


def float16_is_fast() -> bool:
    """Whether every GPU here has float16 tensor cores (False without a GPU)."""
    capability = _capability()
    return capability is not None and capability >= MIXED_PRECISION_CAPABILITY


def gpu_names() -> str:
    """The GPUs here by name, a repeated one counted: "Tesla T4 x2"."""
    names = [_details(gpu).get("device_name", gpu.name) for gpu in gpus()]
    counts = {name: names.count(name) for name in names}
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())


def set_precision() -> str:
    """mixed_float16 on GPUs with tensor cores, else float32; the policy's name."""
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if float16_is_fast() else "float32"
    )
    return keras.mixed_precision.global_policy().name


def device_problem(cfg: Config) -> str | None:
    """Why a profile made for a GPU should not start here, or None if it may."""
    if not cfg.needs_gpu or os.environ.get(ALLOW_CPU) == "1":
        return None
    ways_on = (
        f"Set {ALLOW_CPU}=1 to run it anyway, or use the flickr8k-cpu profile "
        "(make flickr8k FLICKR8K_PROFILE=flickr8k-cpu: about an hour on 2 cores)."
    )
    if not gpus():
        cuda = (  # the gpu extra brings CUDA as nvidia-* wheels
            "the gpu extra's CUDA libraries are installed: check that the NVIDIA "
            "driver sees the GPU (nvidia-smi)"
            if importlib.util.find_spec("nvidia")
            else "on Linux with an NVIDIA GPU install the gpu extra: make ... "
            "EXTRAS=dev,gpu"
        )
        return (
            f"the {cfg.profile!r} profile is sized for a GPU and TensorFlow sees none "
            f"({cuda}). On 2 CPU cores the flickr8k series would take about "
            f"{CPU_HOURS} hours. {ways_on}"
        )
    return None


def set_determinism(cfg: Config) -> None:
    """With `cfg.deterministic`, make every run of the same code give the same weights.

    TensorFlow's op determinism alone was not enough on a CPU: with ops running side by
    side (the default), a small merge model's weights differed in the last bits between
    runs (docs/reproducibility.md). So ops also run one at a time. Both settings hold for the whole process,
    and the second can only be made before TensorFlow runs its first op: `prepare`
    calls this.
    """
    if not cfg.deterministic:
        return
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as error:  # TensorFlow has started with its own thread count
        if os.environ.get("TF_NUM_INTEROP_THREADS") != "1":
            raise RuntimeError(
                "deterministic=True runs TensorFlow's ops one at a time, which can only "
                "be set before its first op: call devices.prepare(cfg) first (every "
                "notebook's setup cell does; restart the kernel), or set "
                "TF_NUM_INTEROP_THREADS=1 before starting Python."
            ) from error


def prepare(cfg: Config) -> str:
    """Check the device for the profile and set determinism and the precision; one
    line saying which: several GPUs train with MirroredStrategy (`train.fit`), and a
    GPU without float16 tensor cores in float32.

    Raises RuntimeError with `device_problem`'s message when the profile needs a GPU
    that is not here.
    """
    problem = device_problem(cfg)
    if problem:
        raise RuntimeError(problem)
    set_determinism(cfg)
    policy = set_precision()
    count, capability = len(gpus()), _capability()
    if count == 0:
        where = f"CPU ({os.cpu_count()} cores)"
    elif count == 1:
        where = f"1 GPU: {gpu_names()}"
    else:  # train.fit and features.extract use them all
        where = f"{count} GPUs (MirroredStrategy): {gpu_names()}"
    if capability is not None and capability < MIXED_PRECISION_CAPABILITY:  # P100, K80
        policy += (
            f" (compute capability {capability[0]}.{capability[1]}: no float16 tensor "
            "cores below 7.0, so mixed precision is off)"
        )
    xla = [job for job in ("training", "decoding") if use_xla(job)]
    deterministic = "; deterministic, one op at a time" if cfg.deterministic else ""
    return (
        f"Device: {where}; precision {policy}; XLA for {' and '.join(xla) or 'nothing'}"
        f"{deterministic}."
    )


def distribution_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """MirroredStrategy over `devices` (default: every GPU) when there are several,
    else the default strategy: one code path either way."""
    devices = devices or [d.name for d in tf.config.list_logical_devices("GPU")]
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def replicated(model, strategy: tf.distribute.Strategy):
    """`model` as a function of a numpy batch, split across the strategy's replicas.

    Each replica gets a consecutive slice of the batch and the outputs come back as one
    numpy array in the batch's order. A batch smaller than the replicas is padded with
    copies of its last item first: Keras 3.13 refuses an empty slice.
    """
    replicas = strategy.num_replicas_in_sync
    run = tf.function(lambda inputs: strategy.run(model, args=(inputs,)))

    def forward(batch):
        batch = np.asarray(batch)
        missing = max(replicas - len(batch), 0)
        parts = np.array_split(
            np.concatenate([batch, batch[-1:].repeat(missing, 0)]), replicas
        )
        inputs = strategy.experimental_distribute_values_from_function(
            lambda context: parts[context.replica_id_in_sync_group]
        )
        outputs = strategy.experimental_local_results(run(inputs))
        return np.concatenate([np.asarray(part) for part in outputs])[: len(batch)]

    return forward
