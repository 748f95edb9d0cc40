{{/* Labels of every object: the same as k8s/base, plus Helm's own on object metadata. */}}
{{- define "raven.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: raven
{{- end }}

{{- define "raven.metaLabels" -}}
{{ include "raven.labels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "raven.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/* The --log-level flag when one is set. */}}
{{- define "raven.logLevel" -}}
{{- with .Values.logLevel }}
- --log-level={{ . }}
{{- end }}
{{- end }}

{{/* Liveness on /healthz and readiness on /readyz at the named port `health`. */}}
{{- define "raven.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{- define "raven.nonRootPod" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "raven.nonRootContainer" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{- define "raven.nodeEnv" -}}
env:
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}

{{- define "raven.validate" -}}
{{- if not (has .Values.vpnDriver (list "wireguard" "libreswan")) }}
{{- fail (printf "vpnDriver must be wireguard or libreswan, got %q" .Values.vpnDriver) }}
{{- end }}
{{- if not (or .Values.modes.l3 .Values.modes.l7) }}
{{- fail "modes: at least one of l3 and l7 must be on" }}
{{- end }}
{{- if not (has .Values.logLevel (list "" "trace" "debug" "info" "warn" "error")) }}
{{- fail (printf "logLevel must be empty or one of trace, debug, info, warn, error, got %q" .Values.logLevel) }}
{{- end }}
{{- end }}
