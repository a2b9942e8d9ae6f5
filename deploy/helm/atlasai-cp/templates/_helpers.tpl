{{/* Names and labels shared by every template. */}}

{{- define "atlasai-cp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "atlasai-cp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "atlasai-cp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "atlasai-cp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "atlasai-cp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atlasai-cp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "atlasai-cp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "atlasai-cp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "atlasai-cp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "atlasai-cp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Checks that need more than the schema can say. */}}
{{- define "atlasai-cp.validate" -}}
{{- if not (or .Values.secretKey.value .Values.secretKey.existingSecret) -}}
{{- fail "secretKey.value or secretKey.existingSecret is required: it encrypts tenants' provider keys at rest (generate one with: openssl rand -base64 32)" -}}
{{- end -}}
{{- if and .Values.secretKey.value .Values.secretKey.existingSecret -}}
{{- fail "secretKey.value and secretKey.existingSecret are both set; set only one of them" -}}
{{- end -}}
{{- if and .Values.database.url .Values.database.existingSecret -}}
{{- fail "database.url and database.existingSecret are both set; set only one of them" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (or .Values.database.url .Values.database.existingSecret)) -}}
{{- fail "several replicas need PostgreSQL: set database.url (or database.existingSecret); SQLite serves one replica" -}}
{{- end -}}
{{- end -}}

