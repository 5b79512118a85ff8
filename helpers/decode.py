"""Batched greedy and beam-search decoding, compiled with tf.function.

Many images go through one call; each step is one `model.step` for the whole batch
(times the beam width), never one `model.predict` per word. Decoding stops on the
exact `<end>` id and never emits `<pad>`, `<start>` or `<unk>`: a model trained with
rare words mapped to `<unk>` learns to predict it often (on Flickr8k it fills most
test captions), so its logit is masked at decode time, as are the other two.
Two optional guards against degenerate captions follow common practice in
captioning and translation: a length penalty on the final pick and no repeated
word trigram within a caption.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import tensorflow as tf

from helpers.cache import rows_of
from helpers.config import Config
from helpers.devices import use_xla
from helpers.text import END, END_ID, PAD, PAD_ID, START, START_ID, UNK_ID, Vocabulary

NEG_INF = -1e9


def _log_probs(logits, vocabulary_size):
    """Log-softmax with <pad>, <start> and <unk> made impossible."""
    banned = tf.one_hot(
        [PAD_ID, START_ID, UNK_ID], vocabulary_size, dtype=tf.float32
    )  # (3, vocabulary)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # (batch, vocabulary)
    return log_probs + NEG_INF * tf.reduce_sum(banned, axis=0)


def repeat_state(state: dict, times: int) -> dict:
    """Each image's decoder state `times` times in a row, (batch * times, ...): the
    start (features, their attention projection) is computed once per image."""
    return {name: tf.repeat(value, times, axis=0) for name, value in state.items()}


def policy_log_probs(logits, temperature: float = 1.0):
    """The distribution sampling draws from and self-critical training learns:
    log-softmax of logits / temperature over the words decoding may emit (<pad>,
    <start> and <unk> impossible, the rest renormalised)."""
    banned = tf.one_hot([PAD_ID, START_ID, UNK_ID], tf.shape(logits)[-1])  # (3, V)
    scaled = tf.cast(logits, tf.float32) / temperature
    return tf.nn.log_softmax(scaled + NEG_INF * tf.reduce_sum(banned, axis=0))


def sample(
    model,
    features,
    samples: int,
    max_length: int,
    temperature: float = 1.0,
    end_id: int = END_ID,
):
    """`samples` captions per image, each word drawn from `policy_log_probs`.

    Returns tokens (batch * samples, max_length), an image's samples in consecutive
    rows, with <pad> after each caption's <end>. The same `model.step` as
    `beam_search`, one call per word for the whole batch.
    """
    features = tf.convert_to_tensor(features, tf.float32)  # (batch, grid, dim)
    state = repeat_state(model.initial_state(features), samples)  # (batch * samples, ...)
    rows = tf.shape(features)[0] * samples
    tokens = tf.zeros((rows, max_length), tf.int32)
    finished = tf.zeros((rows,), tf.bool)
    words = tf.fill([rows], START_ID)
    for t in tf.range(max_length):
        logits, _, state = model.step(words, state)  # (rows, vocabulary)
        drawn = tf.random.categorical(policy_log_probs(logits, temperature), 1)[:, 0]
        words = tf.where(finished, PAD_ID, tf.cast(drawn, tf.int32))  # (rows,)
        tokens += words[:, None] * tf.one_hot(t, max_length, dtype=tf.int32)
        finished |= tf.equal(words, end_id)
        if tf.reduce_all(finished):
            break
    return tokens


def _take(values, origin):
    """Rows of `values` (batch, k, ...) reordered by `origin` (batch, k) within each image."""
    return tf.gather(values, origin, batch_dims=1)


def _repeated_ngrams(tokens, t, vocabulary_size, n: int = 3):
    """(batch, k, V) 1.0 where a word would repeat an n-gram of its beam, else 0.0.

    `tokens` (batch, k, max_length) holds each beam's words before step `t`. A word w
    is banned when (words t-n+1 .. t-1, w) already occurred at some j .. j+n-1 < t.
    """
    batch, k, max_length = tf.unstack(tf.shape(tokens))
    last = tf.gather(tokens, tf.maximum(t - n + 1 + tf.range(n - 1), 0), axis=2)
    match = tf.range(n - 1, max_length) < t  # the whole earlier n-gram lies before t
    for i in range(n - 1):  # (batch, k, max_length - n + 1)
        match &= tf.equal(tokens[..., i : max_length - n + 1 + i], last[..., i : i + 1])
    followed = tf.reshape(tokens[..., n - 1 :], (batch * k, -1))  # the next words
    rows = tf.broadcast_to(tf.range(batch * k)[:, None], tf.shape(followed))
    found = tf.reshape(tf.cast(match, tf.float32), tf.shape(followed))
    counts = tf.scatter_nd(
        tf.stack([rows, followed], axis=-1), found, [batch * k, vocabulary_size]
    )  # (batch * k, V)
    return tf.reshape(tf.minimum(counts, 1.0), (batch, k, vocabulary_size))


def beam_search(
    model,
    features,
    beam_width: int,
    max_length: int,
    *,
    end_id: int = END_ID,
    length_penalty: float = 1.0,
    block_repeated_trigrams: bool = False,
    block_repeated_pairs: bool = False,
):
    """Beam search over a batch; beam width 1 is greedy decoding.

    Returns tokens (batch, max_length), the chosen beam's score (sum of log
    probabilities divided by length ** length_penalty: 1 is the score per word, 0 the
    plain sum, which favours short captions), its length (words including <end>) and
    attention weights (batch, max_length, grid). Padding follows <end>. No beam
    repeats a word trigram with `block_repeated_trigrams`, a pair with `..._pairs`.
    """
    features = tf.convert_to_tensor(features, tf.float32)  # (batch, grid, dim)
    batch, grid, k = tf.shape(features)[0], features.shape[1], beam_width
    state = repeat_state(model.initial_state(features), k)  # each (batch * k, ...)
    vocabulary_size = model.vocabulary_size
    recurrent = getattr(model, "recurrent_state", tuple(state))
    # Only the first beam is alive at the start, so step one expands a single prefix.
    scores = tf.tile(tf.constant([[0.0] + [NEG_INF] * (k - 1)]), [batch, 1])  # (batch, k)
    tokens = tf.zeros((batch, k, max_length), tf.int32)
    alphas = tf.zeros((batch, k, max_length, grid), tf.float32)
    lengths = tf.zeros((batch, k), tf.int32)
    finished = tf.zeros((batch, k), tf.bool)
    words = tf.fill([batch * k], START_ID)
    for t in tf.range(max_length):
        # logits (batch * k, vocabulary), alpha (batch * k, grid)
        logits, alpha, state = model.step(words, state)
        log_probs = tf.reshape(_log_probs(logits, vocabulary_size), (batch, k, -1))
        if block_repeated_trigrams or block_repeated_pairs:
            n = 2 if block_repeated_pairs else 3
            repeats = _repeated_ngrams(tokens, t, vocabulary_size, n)  # (batch, k, V)
            log_probs += NEG_INF * repeats
        # A finished beam may only continue with <pad>, at no cost.
        pad_only = tf.one_hot(PAD_ID, vocabulary_size, on_value=0.0, off_value=NEG_INF)
        log_probs = tf.where(finished[..., None], pad_only, log_probs)  # (batch, k, V)
        candidates = scores[..., None] + log_probs  # (batch, k, V)
        candidates = tf.reshape(candidates, (batch, -1))  # (batch, k * V)
        scores, flat = tf.math.top_k(candidates, k)  # (batch, k) each
        origin = flat // vocabulary_size  # which beam each survivor extends
        new_words = tf.cast(flat % vocabulary_size, tf.int32)  # (batch, k)
        take = functools.partial(_take, origin=origin)  # per image: follow the survivors
        was_finished = take(finished)
        here = tf.one_hot(t, max_length, dtype=tf.int32)  # (max_length,)
        tokens = take(tokens) + new_words[..., None] * here
        step_alpha = tf.reshape(tf.cast(alpha, tf.float32), (batch, k, grid))
        alive = tf.cast(~was_finished, tf.float32)[..., None, None]
        at_t = tf.cast(here, tf.float32)[None, None, :, None]  # (1, 1, max_length, 1)
        alphas = take(alphas) + take(step_alpha)[:, :, None, :] * at_t * alive
        lengths = take(lengths) + tf.cast(~was_finished, tf.int32)
        finished = was_finished | tf.equal(new_words, end_id)
        flat_origin = origin + tf.range(batch)[:, None] * k  # (batch, k): rows of state
        flat_origin = tf.reshape(flat_origin, [-1])  # (batch * k,)
        # Only the recurrent state differs between an image's beams; the rest (its
        # features) is the same for all of them and needs no reordering.
        state = {
            name: tf.gather(value, flat_origin) if name in recurrent else value
            for name, value in state.items()
        }
        words = tf.reshape(new_words, [-1])
        if tf.reduce_all(finished):
            break
    normalised = scores / tf.cast(tf.maximum(lengths, 1), tf.float32) ** length_penalty
    best = tf.argmax(normalised, axis=1, output_type=tf.int32)  # (batch,)
    pick = lambda x: tf.gather(x, best, batch_dims=1)  # noqa: E731
    return pick(tokens), pick(normalised), pick(lengths), pick(alphas)


class Decoder:
    """Compiled decoding for one model and vocabulary, over any number of images."""

    def __init__(
        self,
        model,
        vocabulary: Vocabulary,
        *,
        max_length: int | None = None,
        batch_size: int = 128,
        length_penalty: float = 1.0,
        block_repeated_trigrams: bool = False,
        block_repeated_pairs: bool = False,
        jit_compile: bool | None = None,
    ):
        if (
            vocabulary.words[:3] != (PAD, START, END)
            or len(vocabulary) != model.vocabulary_size
        ):
            raise ValueError("the vocabulary does not match the model")
        self.model, self.vocabulary, self.batch_size = model, vocabulary, batch_size
        self.guards = {
            "length_penalty": length_penalty,
            "block_repeated_trigrams": block_repeated_trigrams,
            "block_repeated_pairs": block_repeated_pairs,
        }
        self.max_length = max_length or vocabulary.max_length + 1  # words plus <end>
        if self.max_length > getattr(model, "max_length", self.max_length):
            raise ValueError(f"{self.max_length} steps: beyond the model's positions")
        # XLA where it is faster on this device (helpers.devices.XLA_BY_DEVICE).
        self.jit_compile = use_xla("decoding") if jit_compile is None else jit_compile
        self._compiled = {}
        self._lock = threading.Lock()  # the web page decodes on several threads

    @classmethod
    def from_config(cls, model, vocabulary: Vocabulary, cfg: Config) -> Decoder:
        """A decoder with the configuration's guards (length penalty, repeats)."""
        return cls(
            model,
            vocabulary,
            length_penalty=cfg.length_penalty,
            block_repeated_trigrams=cfg.block_repeated_trigrams,
            block_repeated_pairs=cfg.block_repeated_pairs,
        )

    def _function(self, search, **options):
        """`search` (beam_search or sample) compiled for this model, once per options."""
        key = (search.__name__, *sorted(options.items()))
        with self._lock:
            if key not in self._compiled:
                # An unknown batch size in the signature keeps every loop shape fixed.
                signature = tf.TensorSpec((None, self.model.grid, self.model.feature_dim))
                # A partial, not a lambda: tf.function would count every decoder's
                # lambda as one function retraced and warn about it.
                self._compiled[key] = tf.function(
                    functools.partial(
                        search,
                        self.model,
                        max_length=self.max_length,
                        end_id=self.vocabulary.ids[END],
                        **options,
                    ),
                    input_signature=[signature],
                    # XLA ignores the seed of tf.random.categorical: sampling stays
                    # out of it, so that a seeded run draws the same captions.
                    jit_compile=self.jit_compile and search is not sample,
                )
            return self._compiled[key]

    def __call__(self, features, beam_width: int = 1) -> list[dict]:
        """One dict per image: text, tokens, score, attention (words, grid)."""
        if beam_width < 1:
            raise ValueError("beam_width must be at least 1")
        function = self._function(beam_search, beam_width=beam_width, **self.guards)
        results = []
        for start in range(0, len(features), self.batch_size):
            batch = np.asarray(features[start : start + self.batch_size], np.float32)
            tokens, scores, lengths, alphas = (x.numpy() for x in function(batch))
            for row in range(len(batch)):
                n = int(lengths[row])
                ids = tokens[row, :n].tolist()
                words = [w for w in ids if w != self.vocabulary.ids[END]]
                results.append(
                    {
                        "text": self.vocabulary.decode(ids),
                        "tokens": words,
                        "score": float(scores[row]),
                        "attention": alphas[row, : len(words)],  # (words, grid)
                    }
                )
        return results

    def sample(self, features, samples: int, temperature: float = 1.0) -> list[list]:
        """`samples` captions drawn at random for each image: one list of texts each."""
        function = self._function(sample, samples=samples, temperature=temperature)
        tokens = function(np.asarray(features, np.float32)).numpy()
        texts = [self.vocabulary.decode(row) for row in tokens.tolist()]
        return [texts[i : i + samples] for i in range(0, len(texts), samples)]

    def caption(
        self, features, feature_names: list[str], names: list[str], beam_width: int = 1
    ) -> dict[str, dict]:
        """Decode the images `names`, reading their rows of the feature memmap."""
        rows = rows_of(names, feature_names)
        return dict(zip(names, self(features[rows], beam_width)))


def beam_trace(
    model,
    vocabulary: Vocabulary,
    features,
    beam_width: int = 3,
    max_length: int | None = None,
    *,
    block_repeated_trigrams: bool = False,
    block_repeated_pairs: bool = False,
) -> list[list[dict]]:
    """Beam search on one image in plain Python, keeping the beams of every step.

    For teaching (notebook 05): the rules of `beam_search` (no <pad>, <start> or
    <unk>, a finished beam is carried unchanged, optionally no repeated n-gram), so
    `best_beam` of the last step is the compiled decoder's caption. Each step lists
    the surviving beams, best first: {"words", "score" (sum of log-probabilities),
    "finished"}.
    """
    end = vocabulary.ids[END]
    max_length = max_length or vocabulary.max_length + 1
    state = model.initial_state(tf.constant(np.asarray(features, np.float32)[None]))
    beams = [([], 0.0, state)]  # (word ids, score, state after the last word)
    n = 2 if block_repeated_pairs else 3 if block_repeated_trigrams else 0
    steps = []
    for _ in range(max_length):
        candidates = []
        for ids, score, state in beams:
            if ids and ids[-1] == end:
                candidates.append((ids, score, state))
                continue
            previous = ids[-1] if ids else vocabulary.ids[START]
            logits, _, next_state = model.step(tf.constant([previous]), state)
            log_probs = _log_probs(logits, model.vocabulary_size).numpy()[0]  # (vocab,)
            for j in range(len(ids) - n + 1 if n else 0):  # n-grams said before
                if ids[j : j + n - 1] == ids[len(ids) - n + 1 :]:
                    log_probs[ids[j + n - 1]] = NEG_INF
            for word in np.argsort(-log_probs)[:beam_width]:
                candidates.append(
                    (ids + [int(word)], score + float(log_probs[word]), next_state)
                )
        beams = sorted(candidates, key=lambda beam: -beam[1])[:beam_width]
        steps.append(
            [
                {
                    "words": [vocabulary.words[i] for i in ids],
                    "score": score,
                    "finished": ids[-1] == end,
                }
                for ids, score, _ in beams
            ]
        )
        if all(ids[-1] == end for ids, _, _ in beams):
            break
    return steps


def best_beam(beams: list[dict], length_penalty: float = 1.0) -> dict:
    """The beam `beam_search` returns: the best score / length ** length_penalty."""
    return max(
        beams, key=lambda beam: beam["score"] / len(beam["words"]) ** length_penalty
    )
