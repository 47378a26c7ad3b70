package metrics

import "strings"

// Scores are one sample's (or the average of several samples') similarity
// scores as LLaMA-Factory reports them: each ×100. The JSON names are
// LLaMA-Factory's keys (predictions_score.json).
type Scores struct {
	BLEU4  float64 `json:"bleu-4"`
	Rouge1 float64 `json:"rouge-1"`
	Rouge2 float64 `json:"rouge-2"`
	RougeL float64 `json:"rouge-l"`
}

// Score is Default().Score(pred, label).
func Score(pred, label string) (Scores, error) {
	s, err := Default()
	if err != nil {
		return Scores{}, err
	}
	return s.Score(pred, label), nil
}

// Score is LLaMA-Factory's per-sample ComputeSimilarity: each score ×100 and
// rounded to 4 decimals as Python's round does.
func (s *Segmenter) Score(pred, label string) Scores {
	raw := s.rawScores(pred, label)
	return Scores{
		BLEU4:  pyRound(raw.BLEU4*100, 4),
		Rouge1: pyRound(raw.Rouge1*100, 4),
		Rouge2: pyRound(raw.Rouge2*100, 4),
		RougeL: pyRound(raw.RougeL*100, 4),
	}
}

// rawScores are the library values before LLaMA-Factory's ×100 and rounding:
// the ROUGE F scores of the jieba words (all 0 when either text is only
// whitespace) and BLEU-4 of the characters.
func (s *Segmenter) rawScores(pred, label string) Scores {
	hyp := strings.Join(s.Cut(pred), " ")
	ref := strings.Join(s.Cut(label), " ")
	out := Scores{BLEU4: bleu4(pred, label)}
	if strings.IndexFunc(hyp, notSpace) < 0 || strings.IndexFunc(ref, notSpace) < 0 {
		return out
	}
	hw, rw := rougeWords(hyp), rougeWords(ref)
	out.Rouge1 = rougeN(hw, rw, 1)
	out.Rouge2 = rougeN(hw, rw, 2)
	out.RougeL = rougeL(hw, rw)
	return out
}

func notSpace(r rune) bool { return !pyIsSpace(r) }

// Average is the mean of each score over the samples, as
// scripts/eval_bleu_rouge.py computes it: sum(scores) / len(scores), summed
// left to right. (ComputeSimilarity's np.mean sums pairwise, which can differ
// in the last bits.) No samples average to zero scores.
func Average(all []Scores) Scores {
	var sum Scores
	if len(all) == 0 {
		return sum
	}
	for _, s := range all {
		sum.BLEU4 += s.BLEU4
		sum.Rouge1 += s.Rouge1
		sum.Rouge2 += s.Rouge2
		sum.RougeL += s.RougeL
	}
	n := float64(len(all))
	return Scores{BLEU4: sum.BLEU4 / n, Rouge1: sum.Rouge1 / n, Rouge2: sum.Rouge2 / n, RougeL: sum.RougeL / n}
}
