// Package deploy owns running the server on Kubernetes: the Helm chart
// (helm/qwen3-server), the plain manifests rendered from it (manifests/) and
// the tests that hold them to the Kubernetes API and to the server. It has no
// code of its own, only tests: they render the chart with the helm binary and
// validate the output with kubeconform against schemas generated from
// Kubernetes' OpenAPI document and the custom resources' CRDs (schemagen/),
// all put in build/deploy by `make deploy-tools deploy-schemas`.
//
// It must not import the server's packages, except configs, whose loader is
// the reference for what the rendered ConfigMap and environment may contain.
package deploy
