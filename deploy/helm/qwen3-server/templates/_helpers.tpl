{{/* Names: <release>-<chart> cut to 63 characters (a DNS label), or the overrides. */}}
{{- define "qwen3-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qwen3-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "qwen3-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "qwen3-server.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The pods' identity: the Deployment, Service, PDB and InferencePool select by it. */}}
{{- define "qwen3-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen3-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "qwen3-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qwen3-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "qwen3-server.poolName" -}}
{{- default (include "qwen3-server.fullname" .) .Values.inferencePool.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the keys: the user's, or the one this chart creates. */}}
{{- define "qwen3-server.keysSecret" -}}
{{- default (printf "%s-keys" (include "qwen3-server.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* The port /metrics is served on: the separate listener's, or the API's. */}}
{{- define "qwen3-server.metricsPortName" -}}
{{- if .Values.metrics.port }}metrics{{ else }}http{{ end }}
{{- end }}

{{/*
Seconds in a Go duration (server.shutdown_grace, adapters.watch), rounded up:
"30s" -> 30, "1m30s" -> 90, "1.5s" -> 2, "500ms" -> 1, "0" -> 0. Helm has no
duration parser; a value Go would refuse fails the render here rather than
the pod at start-up. Argument: (list VALUE "its.key").
*/}}
{{- define "qwen3-server.durationSeconds" -}}
{{- $d := index . 0 | toString | trim }}
{{- $key := index . 1 }}
{{- $part := "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)" }}
{{- if eq $d "0" }}0
{{- else if not (regexMatch (printf "^(%s)+$" $part) $d) }}
{{- fail (printf "%s %q is not a Go duration (like 30s, 2m or 1m30s)" $key $d) }}
{{- else }}
{{- /* Divisors and multipliers rather than fractions, so that 3000ms is exactly 3. */}}
{{- $div := dict "ns" 1e9 "us" 1e6 "µs" 1e6 "ms" 1e3 "s" 1 "m" 1 "h" 1 }}
{{- $mul := dict "ns" 1 "us" 1 "µs" 1 "ms" 1 "s" 1 "m" 60 "h" 3600 }}
{{- $total := 0.0 }}
{{- range regexFindAll $part $d -1 }}
{{- $num := regexFind "^[0-9.]+" . | float64 }}
{{- $unit := regexReplaceAll "^[0-9.]+" . "" }}
{{- $total = addf $total (divf (mulf $num (get $mul $unit)) (get $div $unit)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop sleep + shutdown grace + margin. */}}
{{- define "qwen3-server.terminationGrace" -}}
{{- $grace := include "qwen3-server.durationSeconds" (list (required "config.server.shutdown_grace is required (the pod's termination grace is computed from it)" (dig "server" "shutdown_grace" "" (default dict .Values.config))) "config.server.shutdown_grace") | int }}
{{- add (int .Values.lifecycle.preStopSleepSeconds) $grace (int .Values.lifecycle.terminationGraceExtraSeconds) }}
{{- end }}

{{/*
The server configuration: the user's `config` with the keys the chart owns
set from the values they follow from. A chart-owned key in `config` fails the
render, so that the ConfigMap never disagrees with the volumes and ports.
*/}}
{{- define "qwen3-server.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $owned := dict
  "server" (list "addr" "api_keys" "admin_keys" "metrics_addr")
  "model" (list "path")
  "adapters" (list "dirs" "watch" "cache_dir") }}
{{- range $section, $keys := $owned }}
{{- $given := get $cfg $section | default dict }}
{{- range $keys }}
{{- if hasKey $given . }}
{{- fail (printf "config.%s.%s is set by the chart (see values.yaml: models, adapters, auth, metrics, containerPort); remove it from config" $section .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $server := get $cfg "server" | default dict }}
{{- if .Values.metrics.port }}
{{- $_ := set $server "metrics_addr" (printf "0.0.0.0:%d" (int .Values.metrics.port)) }}
{{- end }}
{{- $_ := set $cfg "server" $server }}
{{- $model := get $cfg "model" | default dict }}
{{- $_ := set $model "path" (printf "%s/%s" (trimSuffix "/" .Values.models.mountPath) (required "models.file is required" .Values.models.file)) }}
{{- $_ := set $cfg "model" $model }}
{{- $adapters := get $cfg "adapters" | default dict }}
{{- $_ := set $adapters "cache_dir" (printf "%s/adapters" (trimSuffix "/" .Values.cache.mountPath)) }}
{{- if .Values.adapters.enabled }}
{{- if eq (include "qwen3-server.durationSeconds" (list .Values.adapters.watch "adapters.watch")) "0" }}
{{- fail "adapters.watch must be more than 0 with adapters.enabled: replicas find adapters added to the shared volume only by scanning it" }}
{{- end }}
{{- $_ := set $adapters "dirs" (list .Values.adapters.mountPath) }}
{{- $_ := set $adapters "watch" .Values.adapters.watch }}
{{- end }}
{{- $_ := set $cfg "adapters" $adapters }}
{{- toYaml $cfg }}
{{- end }}

{{/* A volume source from models or adapters values: claim or hostPath. */}}
{{- define "qwen3-server.volumeSource" -}}
{{- $v := index . 0 }}{{ $claim := index . 1 }}{{ $what := index . 2 }}
{{- if eq $v.type "pvc" }}
persistentVolumeClaim:
  claimName: {{ default $claim $v.existingClaim }}
  readOnly: {{ if hasKey $v "readOnly" }}{{ $v.readOnly }}{{ else }}true{{ end }}
{{- else if eq $v.type "hostPath" }}
hostPath:
  path: {{ required (printf "%s.hostPath is required with type hostPath" $what) $v.hostPath }}
  type: Directory
{{- else }}
{{- fail (printf "%s.type %q: want pvc or hostPath" $what $v.type) }}
{{- end }}
{{- end }}
