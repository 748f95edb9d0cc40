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
{{- with .Values.k8sServiceHost }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ $.Values.k8sServicePort | quote }}
{{- end }}
{{- end }}

{{- define "raven.validate" -}}
{{- if not (has .Values.vpnDriver (list "wireguard" "libreswan")) }}
{{- fail (printf "vpnDriver must be wireguard or libreswan, got %q" .Values.vpnDriver) }}
{{- end }}
{{- if not (or .Values.modes.l3 .Values.modes.l7) }}
{{- fail "modes: at least one of l3 and l7 must be on" }}
{{- end }}
{{- with .Values.proxyDns.clusterIP }}
{{- if not (regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" (toString .)) }}
{{- fail (printf "proxyDns.clusterIP must be an IPv4 address, got %q" (toString .)) }}
{{- end }}
{{- end }}
{{- if .Values.k8sServiceHost }}
{{- if not (regexMatch "^([0-9]{1,3}(\\.[0-9]{1,3}){3}|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$" (toString .Values.k8sServiceHost)) }}
{{- fail (printf "k8sServiceHost must be an IPv4 address or a DNS name, got %q" (toString .Values.k8sServiceHost)) }}
{{- end }}
{{- if not (regexMatch "^[0-9]{1,5}$" (toString .Values.k8sServicePort)) }}
{{- fail (printf "k8sServicePort must be a port number when k8sServiceHost is set, got %q" (toString .Values.k8sServicePort)) }}
{{- end }}
{{- end }}
{{- if not (has .Values.logLevel (list "" "trace" "debug" "info" "warn" "error")) }}
{{- fail (printf "logLevel must be empty or one of trace, debug, info, warn, error, got %q" .Values.logLevel) }}
{{- end }}
{{- end }}
