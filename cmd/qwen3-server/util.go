package main

import "strings"

func trimNL(s string) string { return strings.TrimRight(s, "\n") }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
