{{/* Chart name, possibly overridden. */}}
{{- define "checkout-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-qualified unless the release name already contains the chart name. */}}
{{- define "checkout-operator.fullname" -}}
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

{{- define "checkout-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels (immutable in the Deployment). */}}
{{- define "checkout-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "checkout-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Recommended labels. */}}
{{- define "checkout-operator.labels" -}}
helm.sh/chart: {{ include "checkout-operator.chart" . }}
{{ include "checkout-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: checkout-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "checkout-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "checkout-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "checkout-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's leader Lease. */}}
{{- define "checkout-operator.leaseName" -}}
{{- default (include "checkout-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* A PromQL label selector for the operator's own series (PodMonitor or ServiceMonitor). */}}
{{- define "checkout-operator.promSelector" -}}
namespace="{{ .Release.Namespace }}", pod=~"{{ include "checkout-operator.fullname" . }}-.*"
{{- end }}
