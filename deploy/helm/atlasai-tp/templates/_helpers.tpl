{{/* Names and labels shared by every template. */}}

{{- define "atlasai-tp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "atlasai-tp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "atlasai-tp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "atlasai-tp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "atlasai-tp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atlasai-tp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "atlasai-tp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "atlasai-tp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: tenant-plane
{{- end -}}

{{- define "atlasai-tp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "atlasai-tp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the projected config volume (values file + secrets) is mounted. */}}
{{- define "atlasai-tp.configDir" -}}/etc/atlasai{{- end -}}

{{/* Checks that need more than the schema can say. */}}
{{- define "atlasai-tp.validate" -}}
{{- if and .Values.byoc.apiKey .Values.byoc.existingSecret -}}
{{- fail "byoc.apiKey and byoc.existingSecret are both set; set only one of them" -}}
{{- end -}}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) (has "ReadWriteOnce" .Values.persistence.accessModes) -}}
{{- fail "persistence with ReadWriteOnce cannot be shared by several replicas; use replicaCount: 1, a ReadWriteMany volume, or PostgreSQL" -}}
{{- end -}}
{{- end -}}
