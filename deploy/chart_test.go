package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qwen3-lora/qwen3-server/configs"
)

var update = flag.Bool("update", false, "write manifests/*.yaml from the chart (make deploy-manifests)")

const (
	chartDir    = "helm/qwen3-server"
	releaseName = "qwen3-server"
	// What `make deploy-tools deploy-schemas` builds (paths from this package's folder).
	toolsDir   = "../build/deploy/bin"
	schemasDir = "../build/deploy/schemas"
)

// rendering is one set of values the chart is tested with, the kinds its
// output must hold, and the committed plain manifest rendered from it.
type rendering struct {
	name     string
	values   []string
	kinds    []string
	manifest string
}

var renderings = []rendering{
	{
		name:     "defaults",
		kinds:    []string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		manifest: "manifests/qwen3-server.yaml",
	},
	{
		name:   "cluster (adapters, autoscaling, InferencePool)",
		values: []string{"manifests/cluster-values.yaml"},
		kinds: []string{"ConfigMap", "Deployment", "HTTPRoute", "HorizontalPodAutoscaler", "InferencePool",
			"PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"},
		manifest: "manifests/qwen3-server-cluster.yaml",
	},
	{
		name:   "edge (hostPath, keys as values, odd grace)",
		values: []string{"testdata/values-edge.yaml"},
		kinds:  []string{"ConfigMap", "Deployment", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
	},
}

// tool is the path of a binary `make deploy-tools` installs; without it the
// test fails (CI's make test builds it first), it does not skip.
func tool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(toolsDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built (%v): run `make deploy-tools deploy-schemas` (make test does)", p, err)
	}
	return p
}

// kubeVersion is the Kubernetes version the schemas were generated for
// (the Makefile's KUBE_VERSION, which the README names).
func kubeVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(schemasDir, "kubernetes-version"))
	if err != nil {
		t.Fatalf("no generated schemas (%v): run `make deploy-schemas` (make test does)", err)
	}
	return strings.TrimSpace(string(raw))
}

// helmTemplate renders the chart; extra are more helm arguments.
func helmTemplate(t *testing.T, values []string, extra ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", releaseName, chartDir, "--namespace", "qwen3", "--kube-version", kubeVersion(t)}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	cmd := helm(t, append(args, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// helm is a helm command that reads and writes no configuration, cache or
// plugins outside the test's own folder.
func helm(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(tool(t, "helm"), args...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home+"/config", "HELM_CACHE_HOME="+home+"/cache",
		"HELM_DATA_HOME="+home+"/data", "HELM_PLUGINS="+home+"/plugins")
	return cmd
}

func render(t *testing.T, r rendering, extra ...string) []byte {
	t.Helper()
	out, err := helmTemplate(t, r.values, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubeResult is one resource in kubeconform's JSON output.
type kubeResult struct {
	Kind, Name, Version, Status, Msg string
}

// kubeconform validates manifest strictly against the generated schemas:
// the Kubernetes kinds under v<version>-standalone-strict/, the custom
// resources under crds/. A kind with no schema is an error ("could not find
// schema"), never a silent skip.
func kubeconform(t *testing.T, manifest []byte) []kubeResult {
	t.Helper()
	// kubeconform reads only files named *.yaml, *.yml or *.json (any other
	// name is ignored without a word), so the name matters.
	file := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(file, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, "kubeconform"),
		"-strict", "-output", "json", "-verbose",
		"-kubernetes-version", kubeVersion(t),
		"-schema-location", schemasDir+"/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
		"-schema-location", schemasDir+"/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
		file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // exit status 1 is "something invalid"
		t.Fatalf("kubeconform: %v: %s", err, stderr.String())
	}
	var report struct{ Resources []kubeResult }
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("kubeconform output: %v\n%s%s", err, out, stderr.String())
	}
	slices.SortFunc(report.Resources, func(a, b kubeResult) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return report.Resources
}

// TestChartIsValid: each rendering passes helm lint --strict, and every
// resource in it is valid under kubeconform -strict, with exactly the kinds
// expected (none missing, none unvalidated).
func TestChartIsValid(t *testing.T) {
	for _, r := range renderings {
		t.Run(r.name, func(t *testing.T) {
			lint := helm(t, "lint", "--strict", chartDir, "--kube-version", kubeVersion(t))
			for _, v := range r.values {
				lint.Args = append(lint.Args, "-f", v)
			}
			if out, err := lint.CombinedOutput(); err != nil {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
			results := kubeconform(t, render(t, r))
			var kinds []string
			valid := 0
			for _, res := range results {
				kinds = append(kinds, res.Kind)
				if res.Status == "statusValid" {
					valid++
				} else {
					t.Errorf("%s %s: %s: %s", res.Kind, res.Name, res.Status, res.Msg)
				}
			}
			if !slices.Equal(kinds, r.kinds) {
				t.Errorf("kinds validated %v, want %v", kinds, r.kinds)
			}
			t.Logf("%d of %d resources valid against Kubernetes v%s and the CRD schemas", valid, len(results), kubeVersion(t))
		})
	}
}

// TestKubeconformCatchesMistakes: the validation can fail. Each case breaks
// one field of the cluster rendering; kubeconform must report exactly that
// resource invalid, naming the field.
func TestKubeconformCatchesMistakes(t *testing.T) {
	cases := []struct {
		kind, want string
		edit       func(doc map[string]any)
	}{
		{"Deployment", "imagePullPolcy", func(d map[string]any) {
			c := dig(d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
			c["imagePullPolcy"] = c["imagePullPolicy"]
			delete(c, "imagePullPolicy")
		}},
		{"Deployment", "/spec/template/spec/terminationGracePeriodSeconds", func(d map[string]any) {
			dig(d, "spec", "template", "spec").(map[string]any)["terminationGracePeriodSeconds"] = "55s"
		}},
		{"Service", "/spec/ports/0/port", func(d map[string]any) {
			dig(d, "spec", "ports").([]any)[0].(map[string]any)["port"] = "http"
		}},
		{"HorizontalPodAutoscaler", "/spec/metrics/0/type", func(d map[string]any) {
			dig(d, "spec", "metrics").([]any)[0].(map[string]any)["type"] = map[string]any{"pods": true}
		}},
		{"InferencePool", "failureMode", func(d map[string]any) {
			dig(d, "spec", "endpointPickerRef").(map[string]any)["failureMode"] = "Sometimes"
		}},
		{"InferencePool", "/spec/targetPorts", func(d map[string]any) {
			s := dig(d, "spec").(map[string]any)
			s["targetPorts"] = append(s["targetPorts"].([]any), map[string]any{"number": 8081})
		}},
		{"InferencePool", "label", func(d map[string]any) {
			dig(d, "metadata").(map[string]any)["label"] = map[string]any{"a": "b"}
		}},
		{"ServiceMonitor", "scrapeTimout", func(d map[string]any) {
			dig(d, "spec", "endpoints").([]any)[0].(map[string]any)["scrapeTimout"] = "10s"
		}},
		{"HTTPRoute", "requests", func(d map[string]any) {
			dig(d, "spec", "rules").([]any)[0].(map[string]any)["timeouts"] = map[string]any{"requests": "600s"}
		}},
		{"InferencePool", "could not find schema", func(d map[string]any) {
			d["apiVersion"] = "inference.networking.x-k8s.io/v1alpha9"
		}},
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.want, func(t *testing.T) {
			docs := decode(t, render(t, renderings[1]))
			found := false
			for _, d := range docs {
				if d["kind"] == c.kind && !found {
					c.edit(d)
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s in the rendering", c.kind)
			}
			var bad []string
			for _, res := range kubeconform(t, encode(t, docs)) {
				if res.Status != "statusValid" {
					bad = append(bad, res.Kind)
					if res.Kind != c.kind || !strings.Contains(res.Msg, c.want) {
						t.Errorf("%s %s: %s (want an error about %q)", res.Kind, res.Status, res.Msg, c.want)
					}
				}
			}
			if len(bad) != 1 {
				t.Errorf("invalid: %v, want exactly the edited %s", bad, c.kind)
			}
		})
	}
}

// TestChartRefusesBadValues: values that would give a broken pod, or that
// the chart does not know (values.schema.json), fail the render with a
// message naming the value.
func TestChartRefusesBadValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"a chart-owned key in config", []string{"--set-string", "config.model.path=/x.gguf"}, "config.model.path is set by the chart"},
		{"server.addr in config", []string{"--set-string", "config.server.addr=0.0.0.0:1"}, "config.server.addr is set by the chart"},
		{"a duration Go refuses", []string{"--set-string", "config.server.shutdown_grace=soon"}, `config.server.shutdown_grace "soon" is not a Go duration`},
		{"a negative duration", []string{"--set-string", "config.server.shutdown_grace=-5s"}, "is not a Go duration"},
		{"adapters without watch", []string{"--set", "adapters.enabled=true", "--set-string", "adapters.watch=0s"}, "adapters.watch must be more than 0"},
		{"an HTTPRoute without a Gateway", []string{"--set", "inferencePool.enabled=true,inferencePool.httpRoute.enabled=true"}, "name the Gateway"},
		{"max below min replicas", []string{"--set", "autoscaling.enabled=true,autoscaling.minReplicas=3,autoscaling.maxReplicas=2"}, "maxReplicas must be at least"},
		{"a misspelt value", []string{"--set", "replicaCont=3"}, "replicaCont"},
		{"a misspelt nested value", []string{"--set", "adapters.wacth=30s"}, "wacth"},
		{"an unknown volume type", []string{"--set", "models.type=nfs"}, "/models/type"},
		{"an unknown failure mode", []string{"--set", "inferencePool.endpointPicker.failureMode=Sometimes"}, "failureMode"},
		{"a comma in a key", []string{"--set-json", `auth.apiKeys=["a,b"]`}, "/auth/apiKeys/0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := helmTemplate(t, nil, c.args...)
			if err == nil {
				t.Fatalf("rendered:\n%s", out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestTerminationGraceFollowsShutdownGrace: the chart's duration arithmetic
// against Go's parser (the one the server reads server.shutdown_grace with).
func TestTerminationGraceFollowsShutdownGrace(t *testing.T) {
	for _, grace := range []string{"0", "0s", "500ms", "3000ms", "1.5s", "30s", "90s", "1m30.5s", "2h", "1h2m3s4ms", ".5m", "250000us"} {
		t.Run(grace, func(t *testing.T) {
			d, err := time.ParseDuration(grace)
			if err != nil {
				t.Fatal(err)
			}
			docs := decode(t, render(t, renderings[0], "--set-string", "config.server.shutdown_grace="+grace,
				"--set", "lifecycle.preStopSleepSeconds=4", "--set", "lifecycle.terminationGraceExtraSeconds=6"))
			got := toInt(t, dig(find(t, docs, "Deployment"), "spec", "template", "spec", "terminationGracePeriodSeconds"))
			if want := 4 + int(math.Ceil(d.Seconds())) + 6; got != want {
				t.Errorf("terminationGracePeriodSeconds %d, want %d (4 + ceil(%v) + 6)", got, want, d)
			}
		})
	}
}

// TestChartAgreesWithServer: the rendered configuration and environment are
// what the server's own loader accepts and validates, and they agree with
// the pod around them: the address with the ports and probes, model.path and
// adapters.dirs with the mounts, the termination grace with the shutdown
// grace, the InferencePool, Service and ServiceMonitor with the pods.
func TestChartAgreesWithServer(t *testing.T) {
	for _, r := range renderings {
		t.Run(r.name, func(t *testing.T) {
			docs := decode(t, render(t, r))
			dep := find(t, docs, "Deployment")
			pod := dig(dep, "spec", "template", "spec").(map[string]any)
			ctr := pod["containers"].([]any)[0].(map[string]any)
			cfg := loadConfig(t, find(t, docs, "ConfigMap"), ctr)

			// Ports and probes.
			port := namedPort(t, ctr, "http")
			if cfg.Server.Addr != fmt.Sprintf("0.0.0.0:%d", port) {
				t.Errorf("server.addr %q, container port %d", cfg.Server.Addr, port)
			}
			for probe, path := range map[string]string{"startupProbe": "/health", "readinessProbe": "/health", "livenessProbe": "/health/live"} {
				if got := dig(ctr, probe, "httpGet", "path"); got != path || dig(ctr, probe, "httpGet", "port") != "http" {
					t.Errorf("%s: %v on port %v, want %s on http", probe, got, dig(ctr, probe, "httpGet", "port"), path)
				}
			}
			// Keys from the Secret reach the server's typed config.
			for _, e := range ctr["env"].([]any) {
				name := e.(map[string]any)["name"]
				if got, ok := map[any][]string{"QWEN3_SERVER_API_KEYS": cfg.Server.APIKeys, "QWEN3_SERVER_ADMIN_KEYS": cfg.Server.AdminKeys}[name]; ok && len(got) != 2 {
					t.Errorf("%s: the server has %d keys, want the 2 made up", name, len(got))
				}
			}
			if dig(ctr, "resources", "limits", "nvidia.com/gpu") == nil {
				t.Error("no nvidia.com/gpu limit")
			}

			// Drain: the kubelet waits for preStop, then the server's grace.
			sleep := toInt(t, dig(ctr, "lifecycle", "preStop", "sleep", "seconds"))
			grace := toInt(t, pod["terminationGracePeriodSeconds"])
			if float64(grace) <= float64(sleep)+cfg.Server.ShutdownGrace.Seconds() {
				t.Errorf("terminationGracePeriodSeconds %d is not longer than preStop %ds + shutdown_grace %v", grace, sleep, cfg.Server.ShutdownGrace)
			}

			// Files: the model and the adapters are where the mounts are.
			mounts := map[string]bool{}
			for _, m := range ctr["volumeMounts"].([]any) {
				mounts[m.(map[string]any)["mountPath"].(string)] = true
			}
			if !mounts[filepath.Dir(cfg.Model.Path)] {
				t.Errorf("model.path %s is in no mount %v", cfg.Model.Path, mounts)
			}
			if !mounts[filepath.Dir(cfg.Adapters.CacheDir)] {
				t.Errorf("adapters.cache_dir %s is in no mount", cfg.Adapters.CacheDir)
			}
			for _, d := range cfg.Adapters.Dirs {
				if !mounts[d] {
					t.Errorf("adapters.dirs %s is not a mount", d)
				}
			}
			if len(cfg.Adapters.Dirs) > 0 && cfg.Adapters.Watch <= 0 {
				t.Error("adapters from a shared volume without adapters.watch: replicas would not see new ones")
			}

			// Who selects the pods.
			labels := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
			svc := find(t, docs, "Service")
			selects(t, "Service", dig(svc, "spec", "selector"), labels)
			if pool := findOpt(docs, "InferencePool"); pool != nil {
				selects(t, "InferencePool", dig(pool, "spec", "selector", "matchLabels"), labels)
				if n := toInt(t, dig(pool, "spec", "targetPorts").([]any)[0].(map[string]any)["number"]); n != port {
					t.Errorf("InferencePool targets port %d, the server listens on %d", n, port)
				}
			}
			if sm := findOpt(docs, "ServiceMonitor"); sm != nil {
				name := dig(sm, "spec", "endpoints").([]any)[0].(map[string]any)["port"]
				var ports []any
				for _, p := range dig(svc, "spec", "ports").([]any) {
					ports = append(ports, p.(map[string]any)["name"])
				}
				if !slices.Contains(ports, name) {
					t.Errorf("ServiceMonitor scrapes port %v, the Service has %v", name, ports)
				}
				// A separate metrics listener is scraped there, on the port it listens on.
				if m := cfg.Server.MetricsAddr; m != "" {
					if name != "metrics" || m != fmt.Sprintf("0.0.0.0:%d", namedPort(t, ctr, "metrics")) {
						t.Errorf("server.metrics_addr %s, scraped on port %v", m, name)
					}
				} else if name != "http" {
					t.Errorf("metrics on the main listener, scraped on port %v", name)
				}
			}
			if hpa := findOpt(docs, "HorizontalPodAutoscaler"); hpa != nil {
				if dig(hpa, "spec", "scaleTargetRef", "name") != dig(dep, "metadata", "name") {
					t.Error("the HPA scales another Deployment")
				}
				if _, set := dig(dep, "spec").(map[string]any)["replicas"]; set {
					t.Error("the Deployment sets replicas while the HPA owns them")
				}
			}
		})
	}
}

// loadConfig loads the ConfigMap's file and the container's QWEN3_*
// environment with the server's own loader (values from Secrets are made
// up), then validates it with the model file swapped for one that exists.
func loadConfig(t *testing.T, cm map[string]any, ctr map[string]any) *configs.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "qwen3-server.yaml")
	if err := os.WriteFile(file, []byte(dig(cm, "data", "qwen3-server.yaml").(string)), 0o644); err != nil {
		t.Fatal(err)
	}
	environ := []string{"QWEN3_CONFIG=" + file}
	for _, e := range ctr["env"].([]any) {
		m := e.(map[string]any)
		v, literal := m["value"].(string)
		if !literal {
			// Distinct per variable: Validate refuses an admin key that is
			// also an API key.
			v = m["name"].(string) + "-1," + m["name"].(string) + "-2"
		}
		environ = append(environ, m["name"].(string)+"="+v)
	}
	cfg, err := configs.Load(nil, environ)
	if err != nil {
		t.Fatalf("the server refuses the rendered configuration: %v", err)
	}
	model := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(model, []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	rendered := cfg.Model.Path
	cfg.Model.Path = model
	if err := cfg.Validate(); err != nil {
		t.Errorf("the server's Validate refuses the rendered configuration: %v", err)
	}
	cfg.Model.Path = rendered
	return cfg
}

// TestManifestsUpToDate: manifests/ holds exactly what the chart renders
// (`make deploy-manifests` rewrites them with -update).
func TestManifestsUpToDate(t *testing.T) {
	for _, r := range renderings {
		if r.manifest == "" {
			continue
		}
		t.Run(r.manifest, func(t *testing.T) {
			header := fmt.Sprintf("# Rendered from deploy/helm/qwen3-server by `make deploy-manifests`%s (release %s);\n"+
				"# do not edit: change the chart or the values and render again.\n", valuesNote(r.values), releaseName)
			want := append([]byte(header), render(t, r)...)
			if *update {
				if err := os.WriteFile(r.manifest, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(r.manifest)
			if err != nil {
				t.Fatalf("%v: run `make deploy-manifests`", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is not what the chart renders: run `make deploy-manifests`", r.manifest)
			}
		})
	}
}

func valuesNote(values []string) string {
	if len(values) == 0 {
		return " with the default values"
	}
	return " with deploy/" + strings.Join(values, ", deploy/")
}

func decode(t *testing.T, manifest []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func encode(t *testing.T, docs []map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, d := range docs {
		raw, err := yaml.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(raw)
	}
	return buf.Bytes()
}

func findOpt(docs []map[string]any, kind string) map[string]any {
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	return nil
}

func find(t *testing.T, docs []map[string]any, kind string) map[string]any {
	t.Helper()
	d := findOpt(docs, kind)
	if d == nil {
		t.Fatalf("no %s rendered", kind)
	}
	return d
}

// dig walks nested maps; nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	n, ok := v.(int)
	if !ok {
		t.Fatalf("%v (%T) is not an integer", v, v)
	}
	return n
}

func namedPort(t *testing.T, ctr map[string]any, name string) int {
	t.Helper()
	for _, p := range ctr["ports"].([]any) {
		if m := p.(map[string]any); m["name"] == name {
			return toInt(t, m["containerPort"])
		}
	}
	t.Fatalf("no container port %s", name)
	return 0
}

// selects: every label of the selector is on the pods.
func selects(t *testing.T, who string, selector any, podLabels map[string]any) {
	t.Helper()
	sel, ok := selector.(map[string]any)
	if !ok || len(sel) == 0 {
		t.Errorf("%s has no selector", who)
		return
	}
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("%s selects %s=%v, the pods have %v", who, k, v, podLabels[k])
		}
	}
}
