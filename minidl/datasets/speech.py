"""Spoken digits synthesised with espeak-ng: many voices, speeds and pitches (offline, cached).

Not human recordings: real speech synthesis with ~100 voice variants, so a model can be tested on
voices it never heard (split by ``voices``). Needs ``apt-get install espeak-ng``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minidl.datasets.download import cache_dir

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 8000  # espeak-ng writes 22050 Hz; decimated to 8 kHz, plenty for speech
LENGTH = 8000  # one second per clip, cut or zero-padded at the end


def _variants() -> list[str]:
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True)
    return sorted(line.split()[4].split("/")[-1] for line in listing.stdout.splitlines()[1:] if line.split())


def _read_wav(path: str) -> np.ndarray:
    with wave.open(path) as handle:
        rate, frames = handle.getframerate(), handle.readframes(handle.getnframes())
    audio = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768
    positions = np.arange(0, len(audio), rate / SAMPLE_RATE)
    audio = np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)  # resample
    clip = np.zeros(LENGTH, dtype=np.float32)
    clip[:min(LENGTH, len(audio))] = audio[:LENGTH]
    return clip


def _speak(variant: str, speed: int, pitch: int, word: str, folder: str) -> np.ndarray:
    wav = os.path.join(folder, f"{variant}-{speed}-{pitch}-{word}.wav")
    subprocess.run(["espeak-ng", "-v", f"en+{variant}", "-s", str(speed), "-p", str(pitch), "-w", wav,
                    word], check=True, capture_output=True)
    return _read_wav(wav)


def _synthesise(path: str, voices: int | None) -> None:
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("spoken digits need espeak-ng: apt-get install -y espeak-ng "
                                f"(or a cached copy at {path})")
    jobs = [(voice_id, variant, speed, pitch, digit)
            for voice_id, variant in enumerate(_variants()[:voices])
            for speed in (130, 180) for pitch in (40, 65) for digit in range(len(WORDS))]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(max_workers=4) as pool:
        clips = list(pool.map(lambda job: _speak(job[1], job[2], job[3], WORDS[job[4]], folder), jobs))
    temporary = path + ".tmp.npz"
    np.savez_compressed(temporary, audio=np.stack(clips),
                        labels=np.array([job[4] for job in jobs], dtype=np.int64),
                        voices=np.array([job[0] for job in jobs], dtype=np.int64))
    os.replace(temporary, path)


def load_spoken_digits(voices: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio (N, 8000) float32 in [-1, 1] at 8 kHz, labels (N,) int64, voice ids (N,) int64).

    Args:
        voices: only the first ``voices`` voice variants (all ~100 when None; a few make a quick run).

    The first call synthesises the clips (all voices: ~4,000 clips, a few minutes on 2 cores) and
    caches them in the minidl cache; a cache of all voices also serves smaller requests.
    """
    full = os.path.join(cache_dir(), "spoken_digits.npz")
    path = full if voices is None or os.path.exists(full) else os.path.join(
        cache_dir(), f"spoken_digits_{voices}_voices.npz")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _synthesise(path, voices)
    with np.load(path, allow_pickle=False) as data:
        keep = data["voices"] < (voices if voices is not None else np.inf)
        return data["audio"][keep], data["labels"][keep], data["voices"][keep]
