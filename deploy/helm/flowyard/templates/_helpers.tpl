{{/* Names and labels shared by every object of the release. */}}

{{- define "flowyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flowyard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selectorLabels takes (dict "ctx" $ "component" "api"). */}}
{{- define "flowyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "flowyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "flowyard.secretName" -}}
{{- printf "%s-secrets" (include "flowyard.fullname" .) -}}
{{- end -}}

{{- define "flowyard.instancesNamespace" -}}
{{- .Values.instances.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* secretRef takes (dict "ctx" $ "existing" <existingSecret> "key" <key in the existing secret> "own" <key in the chart's secret>). */}}
{{- define "flowyard.secretRef" -}}
secretKeyRef:
  name: {{ .existing | default (include "flowyard.secretName" .ctx) }}
  key: {{ ternary .key .own (ne .existing "") }}
{{- end -}}

{{/* env: the configuration every Flowyard process reads (FLOWYARD_*), as container env entries. */}}
{{- define "flowyard.env" -}}
- name: FLOWYARD_DATABASE_URL
  valueFrom:
    {{- include "flowyard.secretRef" (dict "ctx" . "existing" .Values.database.existingSecret "key" .Values.database.existingSecretKey "own" "database-url") | nindent 4 }}
- name: FLOWYARD_SECRET_KEY
  valueFrom:
    {{- include "flowyard.secretRef" (dict "ctx" . "existing" .Values.secretKey.existingSecret "key" .Values.secretKey.existingSecretKey "own" "secret-key") | nindent 4 }}
{{- if or .Values.temporal.apiKey.value .Values.temporal.apiKey.existingSecret }}
- name: FLOWYARD_TEMPORAL_API_KEY
  valueFrom:
    {{- include "flowyard.secretRef" (dict "ctx" . "existing" .Values.temporal.apiKey.existingSecret "key" .Values.temporal.apiKey.existingSecretKey "own" "temporal-api-key") | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "flowyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "flowyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* instancePodLabels: what the kubernetes driver puts on every instance pod (drivers/kubernetes/objects.go). */}}
{{- define "flowyard.instancePodLabels" -}}
app.kubernetes.io/managed-by: flowyard
app.kubernetes.io/component: node-red-instance
{{- end -}}
