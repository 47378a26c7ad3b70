package scheduler

import "testing"

func TestLowestFreeFillsGapsFirst(t *testing.T) {
	free := []*slot{{id: 5}, {id: 2}, {id: 7}}
	if s := lowestFree(free); s.id != 2 {
		t.Errorf("lowestFree: slot %d, want 2", s.id)
	}
}
