#!/usr/bin/python3
"""Reference values for tools/eval/metrics' parity test (metrics_test.go).

Reads one JSON object on stdin and writes one on stdout. Run by the Go test
with Debian's /usr/bin/python3 and its packages python3-jieba (0.42.1) and
python3-nltk (3.8), the implementations LLaMA-Factory calls.

Segmentation (jieba.cut) and BLEU (nltk's sentence_bleu) are the real
libraries. ROUGE is NOT: rouge_chinese is only on PyPI, which this project
cannot reach, and Debian has no package of it. rouge_chinese_scores below is a
transcription of rouge_chinese 1.0.3 (github.com/Isaac-JL-Chen/rouge_chinese:
Rouge.cut_sent and Rouge._get_scores in rouge/rouge.py, rouge_n,
f_r_p_rouge_n, rouge_l_summary_level and _lcs in rouge_chinese/rouge_score.py),
kept as literal as possible so that it can be read against that source.
(rouge_chinese's README shows an output for its example, but not the one its
example gives: the output's 0.636 unigram precision needs 44 distinct
hypothesis words, and the example hypothesis has 24; it cannot serve as a
check.)
"""
import json
import logging
import math
import re
import os
import sys
import tempfile

import jieba
import jieba.finalseg
import nltk
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu


# --- rouge_chinese 1.0.3, transcribed (see the module docstring) ---

def cut_sent(para):
    para = re.sub('([。！？\\?])([^”’])', r"\1\n\2", para)
    para = re.sub('(\\.{6})([^”’])', r"\1\n\2", para)
    para = re.sub('(\\…{2})([^”’])', r"\1\n\2", para)
    para = re.sub('([。！？\\?][”’])([^，。！？\\?])', r'\1\n\2', para)
    para = para.rstrip()
    return para.split("\n")


def split_into_words(sentences):
    words = []
    for s in sentences:
        words.extend(s.split(" "))
    return words


def word_ngram_set(n, sentences):
    # Ngrams(exclusive=True): a set of tuples
    words = split_into_words(sentences)
    return set(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def f_r_p(evaluated_count, reference_count, overlapping_count):
    precision = 0.0 if evaluated_count == 0 else overlapping_count / evaluated_count
    recall = 0.0 if reference_count == 0 else overlapping_count / reference_count
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def rouge_n(evaluated_sentences, reference_sentences, n):
    if len(evaluated_sentences) <= 0:
        raise ValueError("Hypothesis is empty.")
    if len(reference_sentences) <= 0:
        raise ValueError("Reference is empty.")
    ev = word_ngram_set(n, evaluated_sentences)
    rf = word_ngram_set(n, reference_sentences)
    return f_r_p(len(ev), len(rf), len(ev.intersection(rf)))


def len_lcs(x, y):
    n, m = len(x), len(y)
    table = {}
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                table[i, j] = 0
            elif x[i - 1] == y[j - 1]:
                table[i, j] = table[i - 1, j - 1] + 1
            else:
                table[i, j] = max(table[i - 1, j], table[i, j - 1])
    return table[n, m]


def rouge_l_summary_level(evaluated_sentences, reference_sentences):
    if len(evaluated_sentences) <= 0 or len(reference_sentences) <= 0:
        raise ValueError("Collections must contain at least 1 sentence.")
    ref_words = split_into_words(reference_sentences)
    hyp_words = split_into_words(evaluated_sentences)
    m, n = len(ref_words), len(hyp_words)
    llcs = len_lcs(ref_words, hyp_words)
    r_lcs = llcs / m
    p_lcs = llcs / n
    return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8))


def rouge_chinese_scores(hyp, ref):
    """Rouge().get_scores(hyp, ref)[0], F values only."""
    hyp = [" ".join(_.split()) for _ in cut_sent(hyp) if len(_) > 0]
    ref = [" ".join(_.split()) for _ in cut_sent(ref) if len(_) > 0]
    return {
        "rouge-1": rouge_n(hyp, ref, 1),
        "rouge-2": rouge_n(hyp, ref, 2),
        "rouge-l": rouge_l_summary_level(hyp, ref),
    }


# --- LLaMA-Factory's ComputeSimilarity / scripts/eval_bleu_rouge.py ---

def compute_metrics(pred, label):
    hypothesis = list(jieba.cut(pred))
    reference = list(jieba.cut(label))
    if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
        raw = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    else:
        raw = rouge_chinese_scores(" ".join(hypothesis), " ".join(reference))
    rounded = {k: round(v * 100, 4) for k, v in raw.items()}
    bleu = sentence_bleu([list(label)], list(pred), smoothing_function=SmoothingFunction().method3)
    raw["bleu-4"] = float(bleu)
    rounded["bleu-4"] = round(bleu * 100, 4)
    return hypothesis, reference, raw, rounded


def main():
    jieba.setLogLevel(logging.CRITICAL)
    jieba.initialize()
    req = json.load(sys.stdin)

    samples, rounded_all = [], []
    for s in req["samples"]:
        hyp, ref, raw, rounded = compute_metrics(s["pred"], s["label"])
        samples.append({"hyp_tokens": hyp, "ref_tokens": ref, "raw": raw, "rounded": rounded})
        rounded_all.append(rounded)
    average = {}
    for k in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        scores = [r[k] for r in rounded_all]
        average[k] = sum(scores) / len(scores)

    out = {
        "versions": {"jieba": jieba.__version__, "nltk": nltk.__version__},
        "dictionary": {
            "path": jieba.dt.get_dict_file().name,
            "total": jieba.dt.total,
            "keys": len(jieba.dt.FREQ),
        },
        "isspace": [c for c in range(sys.maxunicode + 1) if chr(c).isspace()],
        "samples": samples,
        "average": average,
        "viterbi": [list(jieba.finalseg.viterbi(t, "BMES", jieba.finalseg.start_P,
                                               jieba.finalseg.trans_P, jieba.finalseg.emit_P))
                    for t in req.get("viterbi", [])],
        "round": [round(x, 4) for x in req.get("round", [])],
        "fsum": [math.fsum(xs) for xs in req.get("fsum", [])],
    }
    # jieba.Tokenizer over a small dictionary given in the request, for the
    # cases that jieba's own dictionary rarely reaches (exact ties).
    custom = req.get("custom")
    if custom:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in custom["dict"]))
        try:
            tk = jieba.Tokenizer(dictionary=f.name)
            out["custom"] = [list(tk.cut(t)) for t in custom["texts"]]
        finally:
            os.unlink(f.name)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
