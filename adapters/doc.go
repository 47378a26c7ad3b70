// Package adapters will hold the LoRA adapter registry: GGUF and PEFT
// adapters loaded and unloaded at run time, chosen per request (issue 5).
// Nothing is implemented yet; the folder exists so that the layout matches
// the design and a newcomer knows where adapters will live.
package adapters
