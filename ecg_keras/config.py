"""Run settings: one frozen dataclass, built from flags by the entry points.

Every duration is in seconds, not samples, so that one config serves 100 Hz and 500 Hz data.
No magic numbers live in function bodies: they live here, with the reason for each default.
"""

from __future__ import annotations

import dataclasses

from ecg_keras.data import ptbxl

REPRESENTATIONS = ("spectrogram", "signal")
INPUTS = ("magnitude", "complex", "relative", "relative_advance")
HEADS = ("gap", "concat", "flatten")  # see ecg_keras.models.blocks.head
SELECTIONS = ("best", "last")
FEATURES_IN = ("pipeline", "model")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How a raw ECG becomes the model's input, and how training perturbs it.

    The STFT defaults (Hann window 0.64 s, hop 0.08 s, FFT 0.64 s, up to 40 Hz) give a
    frequency resolution of 1/0.64 s = 1.5625 Hz (26 bins from 0 to 39.06 Hz) and a time step of
    80 ms, i.e. 118 frames for the full 10 s: input float32 [118, 26, 12] at 100 Hz (64-sample
    window, 8-sample hop) and at 500 Hz alike (320 / 40 samples); [118, 26, 36] with
    ``input="complex"``. A window of 0.64 s holds about one beat at rest, so each frame sees a
    whole P-QRS-T; 80 ms hops keep the beat-to-beat rhythm. These are the settings of the
    spectrogram baseline measured in shared/MEASURED.md; the tuner searches window and hop.

    Why 40 Hz, not the 100 Hz Nyquist of 50 Hz: the answer must not depend on how a signal
    reached 100 Hz. PhysioNet made PTB-XL's 100 Hz files with an anti-alias filter that
    ``scipy.signal.resample_poly`` (what ``predict`` uses on a 500 Hz file) does not share.
    Measured on 60 records present at both rates (Welch PSD): the two versions' power agrees
    within 0.4% up to 37.5 Hz and 2.7% at 40.6 Hz, then PhysioNet's falls to 47% at 43.8 Hz,
    2.7% at 46.9 Hz and 0 at 50 Hz. After the per-bin normalization the mean |difference| of
    the two log spectrograms (120 records) is 0.008-0.019 training SDs in every bin up to
    39.1 Hz, then 0.036, 0.11, 0.31, 0.82, 2.2, 8.1 and 18.5 SDs from 40.6 to 50 Hz. With
    bins up to 50 Hz the quickstart model's answers for the two files of one recording
    differed by up to 0.94; see benchmarks/robustness_bench.py for today's figures. The Hann
    main lobe is 2 bins wide, so the 39.06 Hz bin sees up to 42 Hz, where the two still agree.
    """

    sampling_rate: int = 100  # Hz of the signals; must match the prepared data
    window_seconds: float = 0.64
    hop_seconds: float = 0.08
    fft_seconds: float = 0.64  # >= window_seconds; longer zero-pads for finer bins
    # Below every anti-alias filter's transition band (see above); 100 and 500 Hz give the
    # same bins.
    max_frequency_hz: float = 40.0
    # log(|STFT| + offset), |STFT| scaled by 1/sum(window) to be in mV (a sine of amplitude A
    # peaks at A/2). 1e-3 mV is PTB-XL's quantization step (1000 adu/mV): finer detail is noise.
    log_offset: float = 1e-3
    # What the model sees: "spectrogram" (the STFT above) or "signal" (the raw crop,
    # standardized like the PTB-XL benchmark's 1D models). Not a flag: ``Run.prepare``
    # sets it from the model preset, as it sets the sampling rate from the data, so a run can
    # never feed spectrograms to a 1D model; saved in run.json, so evaluate and export follow.
    representation: str = "spectrogram"
    # Which STFT channels a spectrogram model sees. "magnitude": the log magnitude of each lead
    # (12 channels). "complex": the log magnitude, then the magnitude-compressed real and
    # imaginary parts z * log1p(|z| / complex_scale) / |z| of the same STFT (36 channels,
    # 12 leads x 3). The magnitude cannot see the sign of a deflection (QRS polarity, axis, Q
    # waves); the real and imaginary parts flip with it. Measured (shared/MEASURED.md, "One
    # harness, several inputs"): the VGG's validation macro AUC 0.902 -> 0.923, 0.919 and 0.926
    # (seeds 0, 1, 2) at the same cost per epoch. "relative": the log magnitude, then the same
    # compression of each lead's STFT with lead II's phase taken out
    # (``features.channel_groups``): a delay of the whole ECG no longer turns the phase.
    # "relative_advance": that plus each lead's phase advance from its previous frame (60
    # channels). Both measured in docs/results.md (issue 20). Ignored by models on the signal.
    input: str = "magnitude"
    # mV where the compression of the real and imaginary parts turns from linear (z / scale)
    # to logarithmic (sign * log(|z| / scale)), as the log magnitude compresses |z|. 0.01 mV
    # is the setting measured in shared/MEASURED.md: 10 of PTB-XL's 1 uV quantization steps, so
    # the noise floor stays small and linear while 0.1-1 mV QRS bins are compressed.
    complex_scale: float = 0.01

    # Training-time augmentation (never applied to validation, test or exported models).
    crop_seconds: float = 2.5  # random crops, as in the PTB-XL benchmark; 0 = full 10 s
    window_stride_seconds: float = 1.25  # evaluation windows of crop_seconds, aggregated
    amplitude_scale: float = 1.2  # gain drawn log-uniformly from [1/1.2, 1.2]
    # mV of white noise. Off by default: measured on the real subset, 0.01 mV lifts the
    # near-empty high-frequency bins of the 100 Hz records (low-pass filtered, close to the
    # 1 uV floor) by many training standard deviations after normalization.
    noise_std: float = 0.0
    # Largest random delay (seconds, drawn uniformly from +-this per record, any fraction of a
    # sample) applied to each training record before cropping (``data/delay.py``). Why it was
    # tried: PhysioNet's 100 Hz files lag ``resample_poly`` of the 500 Hz originals by 1.2 ms
    # (cross-spectrum phase of 60 pairs, 1.18-1.30 ms from 10 to 45 Hz), which moves the
    # ``input="complex"`` phase channels by 0.02 (3 Hz) to 0.21 (39 Hz) training SDs while the
    # magnitude moves <= 0.017; aligning the two files by that lag cuts the complex model's
    # per-record 95th percentile |dp| from 0.025 to 0.0023. Why it is off: trained with +-5 ms
    # (every sub-sample offset), the model stayed as sensitive to a 0.12-sample shift (95th
    # percentile 0.024 both ways) and to the two files (0.026-0.028 vs 0.025-0.027), with the
    # same validation AUC (docs/results.md).
    delay_seconds: float = 0.0
    time_masks: int = 2  # SpecAugment masks on the normalized spectrogram
    time_mask_seconds: float = 0.4  # widest time mask
    freq_masks: int = 2
    freq_mask_hz: float = 5.0  # widest frequency mask

    def __post_init__(self):
        if self.sampling_rate not in (100, 500):
            raise ValueError(f"--sampling_rate={self.sampling_rate}: must be 100 or 500")
        for name in ("window_seconds", "hop_seconds", "fft_seconds", "max_frequency_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name}={getattr(self, name)}: must be > 0")
        if self.fft_seconds < self.window_seconds:
            raise ValueError(
                f"--fft_seconds={self.fft_seconds} is shorter than "
                f"--window_seconds={self.window_seconds}"
            )
        if self.log_offset <= 0:
            raise ValueError(f"--log_offset={self.log_offset}: must be > 0")
        if self.input not in INPUTS:
            raise ValueError(f"--input={self.input}: must be one of {', '.join(INPUTS)}")
        if self.complex_scale <= 0:
            raise ValueError(f"--complex_scale={self.complex_scale}: must be > 0")
        if not 0 <= self.crop_seconds <= 10:
            raise ValueError(f"--crop_seconds={self.crop_seconds}: must be in [0, 10]")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation={self.representation!r}: must be one of {REPRESENTATIONS}"
            )
        spectrogram = self.representation == "spectrogram"
        if spectrogram and self.crop_seconds and self.crop_seconds < self.window_seconds:
            raise ValueError(f"--crop_seconds={self.crop_seconds} is shorter than one window")
        if self.window_stride_seconds <= 0:
            raise ValueError(f"--window_stride_seconds={self.window_stride_seconds}: must be > 0")
        if self.amplitude_scale < 1 or self.noise_std < 0 or self.delay_seconds < 0:
            raise ValueError("--amplitude_scale must be >= 1, --noise_std and --delay_seconds >= 0")
        if min(self.time_masks, self.freq_masks) < 0:
            raise ValueError("--time_masks and --freq_masks must be >= 0")

    def samples(self, seconds: float) -> int:
        """A duration in samples at ``sampling_rate``."""
        return int(round(seconds * self.sampling_rate))

    @property
    def input_samples(self) -> int:
        """Samples per model input: one crop, or the whole 10 s record."""
        return self.samples(self.crop_seconds or 10.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run: data, split, model, optimizer. Durations in epochs/steps."""

    data_dir: str = "tfrecords/ptbxl100"
    ptbxl_dir: str | None = None  # prepare data_dir from here first when it has no manifest
    task: str = "superdiagnostic"
    classes: tuple[str, ...] = ()  # a subset of the task's classes; () = all of them
    model: str = "vgg_small"  # a preset of ecg_keras.models (vgg, resnet, vgg_small, ...)
    # Architecture overrides of the preset: stages as "FILTERSxN" (N convolutions per VGG block
    # or residual blocks per ResNet stage), e.g. ("16x1", "32x1", "64x2"); () keeps the
    # preset's. A ResNet's stem then takes the first stage's width. The tuner searches these.
    stages: tuple[str, ...] = ()
    kernel_size: int = 3
    dropout: float = 0.3
    head: str = "gap"
    epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    # A trained run's workdir to start from (fine-tuning, ``training/warm_start.py``): its
    # weights by layer name and shape, a new head where the classes differ, its statistics.
    init_from: str = ""
    # The PTB-XL benchmark split: folds 1-8 train, 9 validation, 10 test.
    train_folds: tuple[int, ...] = ptbxl.TRAIN_FOLDS
    val_folds: tuple[int, ...] = ptbxl.VAL_FOLDS
    test_folds: tuple[int, ...] = ptbxl.TEST_FOLDS
    # AdamW with warm-up then cosine decay; "onecycle" warms up for 30% of the steps (like
    # the benchmark's one-cycle policy), "cosine" for 5%.
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"
    # AdamW's beta_2: Keras' default 0.999; the benchmark's fastai AdamW uses 0.99, which
    # forgets old gradient scales faster over its short (~550-step) one-cycle runs.
    adam_beta2: float = 0.999
    class_weighting: bool = False  # weight positives by negatives/positives per class
    aggregate: str = "max"  # how window predictions combine into one per record
    # Which epoch's model the run keeps: "best" validation macro AUC, or "last" (the PTB-XL
    # benchmark's protocol: the schedule's end, with no choice made on the validation fold,
    # whose AUC then stays an unbiased estimate; it still picks the F1 thresholds).
    select: str = "best"
    # Validation every this many epochs, and always after the last (``ValidationAuc``); the
    # epochs between log NaN. With --select=best the choice is among the validated epochs.
    # Above 1 it saves time where a validation pass is dear: dense evaluation windows score
    # each record 31 times (configs/superdiagnostic.cfg: --select=last, every 5 epochs).
    validation_freq: int = 1
    # Two-stream presets only (models/dual.py): the chance, per record and stream, that a
    # training step zeroes that stream's pooled features (ModDrop), so that the head learns to
    # answer from either trunk alone as an ensemble of the two would; 0 turns it off.
    stream_dropout: float = 0.0
    # Two-stream presets: a head per stream beside the joint one, each training record scored
    # by one of the three (drawn uniformly), their logits averaged in inference
    # (models/dual.py StreamHeads): each trunk learns to answer alone, as an ensemble's members.
    stream_heads: bool = False
    # Polyak averaging of the weights (the optimizer's EMA, Keras' ``use_ema``): 0 is off,
    # else the momentum per step, e.g. 0.99, an average over the last ~100 steps (about 8
    # epochs of the main config). Validation, the kept model and so every export use the
    # averaged weights; the steps go on from the raw ones (``callbacks.weight_averaging``).
    ema_momentum: float = 0.0
    cache: bool = True  # keep parsed signals in memory (fine up to full PTB-XL at 100 Hz)
    strategy: str = "default"
    # Same as --precision=mixed_float16; kept so that older flagfiles still parse.
    mixed_precision: bool = False
    # Where the spectrogram, its normalization and SpecAugment run while training: "pipeline"
    # (tf.data, on the CPU) or "model" (the first layers of the training model, on the
    # accelerator; tf.data then only reads, crops and scales the signal). The saved model and
    # every export take the spectrogram as before either way. See docs/benchmarks.md.
    features_in: str = "pipeline"
    # XLA-compiled training steps on every device. Off: Keras' own choice ("auto": XLA on
    # GPUs, not on CPUs, where it measured 4-6x slower for vgg_small: docs/benchmarks.md).
    jit_compile: bool = False
    # Keras dtype policy while training: "float32", "mixed_bfloat16" (CPUs with AVX512_BF16 or
    # AMX-BF16), "mixed_float16" (GPUs), or "auto": the mixed policy this machine runs fast
    # and safely, else float32 (``device_features.policy``: not bfloat16 on AMX CPUs, where
    # it turned NaN; metrics.json records the one used). The kept
    # model is saved in float32, so evaluation and export never depend on how it trained.
    precision: str = "float32"
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"--epochs={self.epochs}, --batch_size={self.batch_size}: must be >= 1"
            )
        if self.schedule not in ("onecycle", "cosine"):
            raise ValueError(f"--schedule={self.schedule}: must be onecycle or cosine")
        if self.aggregate not in ("max", "mean"):
            raise ValueError(f"--aggregate={self.aggregate}: must be max or mean")
        if self.select not in SELECTIONS:
            raise ValueError(f"--select={self.select}: must be best or last")
        if self.validation_freq < 1:
            raise ValueError(f"--validation_freq={self.validation_freq}: must be >= 1")
        if not 0 <= self.stream_dropout < 0.5:
            raise ValueError(f"--stream_dropout={self.stream_dropout}: must be in [0, 0.5)")
        two_stream_flags = {
            f"--stream_dropout={self.stream_dropout}": self.stream_dropout,
            "--stream_heads": self.stream_heads,
        }
        for flag, value in two_stream_flags.items():
            if value and not self.model.startswith("vgg_resnet1d"):
                raise ValueError(
                    f"{flag} applies to the two-stream presets (vgg_resnet1d...), "
                    f"not --model={self.model}"
                )
        if self.ema_momentum and not 0.9 <= self.ema_momentum < 1:
            raise ValueError(f"--ema_momentum={self.ema_momentum}: must be 0 (off) or in [0.9, 1)")
        if self.ema_momentum and self.strategy == "multi_worker":
            raise ValueError("--ema_momentum: not with --strategy=multi_worker (its own loop)")
        if not 0 < self.adam_beta2 < 1:
            raise ValueError(f"--adam_beta2={self.adam_beta2}: must be in (0, 1)")
        if self.strategy not in ("default", "mirrored", "multi_worker"):
            raise ValueError(
                f"--strategy={self.strategy}: must be default, mirrored or multi_worker"
            )
        if self.features_in not in FEATURES_IN:
            raise ValueError(f"--features_in={self.features_in}: must be pipeline or model")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision={self.precision}: must be one of {PRECISIONS}")
        if self.mixed_precision and self.precision not in ("float32", "mixed_float16"):
            raise ValueError(
                f"--mixed_precision means --precision=mixed_float16, not {self.precision}"
            )
        if self.strategy == "multi_worker" and (
            self.policy != "float32" or self.features_in != "pipeline"
        ):
            raise ValueError(
                "--strategy=multi_worker trains in float32 with --features_in=pipeline only"
            )
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("--learning_rate must be > 0 and --weight_decay >= 0")
        self.stage_pairs()  # raises on a malformed --stages
        if self.kernel_size < 1:
            raise ValueError(f"--kernel_size={self.kernel_size}: must be >= 1")
        split = [set(self.train_folds), set(self.val_folds), set(self.test_folds)]
        if not all(split) or any(a & b for i, a in enumerate(split) for b in split[i + 1 :]):
            raise ValueError(
                f"train/val/test folds must be non-empty and disjoint, got {self.train_folds}, "
                f"{self.val_folds}, {self.test_folds}"
            )

    def stage_pairs(self) -> tuple[tuple[int, int], ...]:
        """``stages`` as (filters, count) pairs; () when the preset's are kept."""
        pairs = []
        for stage in self.stages:
            filters, _, count = str(stage).partition("x")
            if not (filters.isdigit() and count.isdigit() and int(filters) and int(count)):
                raise ValueError(
                    f"--stages={','.join(map(str, self.stages))}: each stage must be "
                    f"FILTERSxCOUNT with positive integers, e.g. 32x2; got {stage!r}"
                )
            pairs.append((int(filters), int(count)))
        return tuple(pairs)

    @property
    def policy(self) -> str:
        """``precision``, with ``--mixed_precision`` as mixed_float16 ("auto" is resolved by
        ``training.device_features.policy``)."""
        return "mixed_float16" if self.mixed_precision else self.precision

    def check_signal_overrides(self) -> None:
        """ValueError naming the flag when a spectrogram-only flag is set for a 1D preset
        (``features.representation == "signal"``).

        The 1D presets keep the benchmark's kernels (several per model, one ``--kernel_size``
        cannot say which) and its concat-pool head; they take ``--dropout`` and ``--stages``.
        ``--input`` chooses spectrogram channels, which a model on the raw signal has none of.
        """
        if self.features.representation != "signal":
            return
        default = TrainConfig()
        for name in ("kernel_size", "head"):
            if getattr(self, name) != getattr(default, name):
                raise ValueError(
                    f"--{name}={getattr(self, name)} applies to spectrogram models; "
                    f"--model={self.model} takes the raw signal and keeps the benchmark's {name}"
                )
        if self.features.input != default.features.input and not self.model.startswith(
            "vgg_resnet1d"
        ):  # the two-stream presets compute their own spectrogram (models/dual.py)
            raise ValueError(
                f"--input={self.features.input} applies to spectrogram models; "
                f"--model={self.model} takes the raw signal"
            )

    def model_overrides(self) -> dict:
        """Builder keyword arguments that replace the preset's (see ``models.get``)."""
        overrides = {"dropout": self.dropout, "head": self.head, "kernel_size": self.kernel_size}
        if self.stages:
            overrides["stages"] = self.stage_pairs()
        return overrides


# Filled in by ``training.run.Run.prepare`` (from the prepared data and the model preset), so a
# config parsed from flags does not know them yet: they do not tell two runs apart.
DERIVED_FEATURES = ("sampling_rate", "representation")


def config_from_dict(obj: dict) -> TrainConfig:
    """A TrainConfig from ``dataclasses.asdict`` output (``run.json``), tolerant of its age:
    fields added since the run was written take their defaults (which is what that run
    trained with), fields since removed are ignored."""

    def fields_of(cls, values: dict) -> dict:
        # JSON has lists where the dataclass has tuples (folds, classes, stages).
        known = {f.name for f in dataclasses.fields(cls)}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}

    train = fields_of(TrainConfig, obj)
    train["features"] = FeatureConfig(**fields_of(FeatureConfig, obj.get("features", {})))
    return TrainConfig(**train)


def run_identity(config: TrainConfig) -> dict:
    """What makes two runs the same run: every config field, defaults included, except the
    ``DERIVED_FEATURES``. ``train`` resumes a workdir and ``compare`` reuses one exactly when
    this matches, so a field added later (at its default) changes nothing for older runs."""
    import json

    # Through JSON, as run.json stores it: tuples and lists compare equal.
    identity = json.loads(json.dumps(dataclasses.asdict(config)))
    for name in DERIVED_FEATURES:
        identity["features"].pop(name)
    return identity
