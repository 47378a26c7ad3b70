// Package web will hold the embedded chat page served at / (issue 6).
// Nothing is implemented yet.
package web
