// Package metrics computes LLaMA-Factory's text-similarity scores — BLEU-4
// and ROUGE-1/2/L, each ×100 — for an offline evaluation of predictions
// against labels, with the same numbers LLaMA-Factory prints. It owns the
// metric definitions and the Chinese word segmentation they rest on. It is
// offline tooling: it must not import the server, the engine or any other
// package of this project, and nothing serving requests may import it.
//
// Where each rule comes from (read in the upstream sources, not copied):
//
//   - Per sample (LLaMA-Factory src/llamafactory/train/sft/metric.py,
//     ComputeSimilarity, and scripts/eval_bleu_rouge.py): hypothesis =
//     jieba.cut(pred), reference = jieba.cut(label); when either joined by
//     spaces has no non-whitespace character, all ROUGE scores are 0, else
//     rouge_chinese.Rouge().get_scores(" ".join(hyp), " ".join(ref)) and
//     its "f" values; BLEU-4 = nltk sentence_bleu([list(label)], list(pred),
//     smoothing_function=SmoothingFunction().method3), on characters; each
//     score is round(score*100, 4).
//   - Averages (scripts/eval_bleu_rouge.py): sum(scores)/len(scores) of the
//     rounded per-sample values. ComputeSimilarity uses np.mean, which sums
//     pairwise and can differ in the last bits.
//   - Segmentation (jieba 0.42.1, jieba/__init__.py and jieba/finalseg):
//     text is split into runs of re_han_default [\u4E00-\u9FD5a-zA-Z0-9+#&._%-]
//     and single other characters ("\r\n" is one token); each run gets the
//     max-log-probability route through the prefix-dictionary DAG (ties to
//     the longer word), and runs of single characters on it that are not a
//     dictionary word go to the HMM: BMES Viterbi on [\u4E00-\u9FD5] runs,
//     the rest split by ([a-zA-Z0-9]+(?:\.\d+)?%?). See segment.go.
//   - ROUGE (rouge_chinese 1.0.3, github.com/Isaac-JL-Chen/rouge_chinese:
//     rouge.py's Rouge.cut_sent and _get_scores, rouge_score.py): sentences
//     are cut after 。！？? (unless a closing quote follows), after ......
//     and ……, and after a sentence end with its closing quote; words are the
//     space-separated pieces of each whitespace-normalised sentence.
//     ROUGE-N counts n-gram SETS (exclusive=True: a repeated n-gram counts
//     once); ROUGE-L is the plain LCS of all words (rouge_chinese dropped
//     pltrdy's summary-level union LCS); F = 2PR/(P+R+1e-8), with P or R 0
//     for an empty side. See rouge.go.
//   - BLEU (nltk 3.8 nltk/translate/bleu_score.py): clipped n-gram counts
//     over max(1, hypothesis n-grams); 0 when no character matches; brevity
//     penalty exp(1-r/c) when c <= r; method3 replaces the k-th zero
//     precision by 1/(2^k·denominator); exp(fsum(0.25·log p_n)). See bleu.go.
//
// Why jieba's algorithm is implemented here rather than called through
// gojieba: gojieba (cppjieba) is a different algorithm — its mixed segmenter
// sends every run of single characters to the HMM, weighs unknown words by
// the dictionary's minimum weight rather than jieba's log(1), and splits the
// text on its own separators — and its data differ from jieba 0.42.1's: its
// dictionary lacks 66 of dict.txt's lines and has 2 others, and its HMM
// emission probabilities are rounded to 6 decimals. So the data are taken
// from Go modules and made jieba's exactly: the dictionary is gojieba
// v1.4.6's jieba.dict.utf8 with dict_delta.txt applied (the test proves it
// equals the dict.txt the reference jieba loads), and the HMM is gse's hmm
// package, whose probabilities are jieba's prob_*.py values to the bit and
// whose Viterbi breaks ties as jieba's does (the test compares both).
// The dictionary file is compiled in (jieba.dict.utf8.gz, a gzipped copy of
// gojieba's, MIT-licensed like jieba): a binary must not depend on the Go
// module cache of the machine that built it, and the package then needs
// gojieba (a cgo package) only in its tests.
//
// Floating point follows CPython operation by operation, with math.fsum
// (pyFsum) and round (pyRound) ported, so that the rounded scores are the
// reference's exactly. log and exp are Go's: CPython calls the C library's,
// which can differ in the last bit (a few raw BLEU values are 1 ulp apart;
// no rounded score and no segmentation of the test corpus changes). Calling
// libm through cgo would make them bit-identical, but the project keeps cgo
// to one package (engine/llamacpp).
package metrics
