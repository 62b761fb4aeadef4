{{/* Names and labels, as `helm create` makes them. */}}
{{- define "pgle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pgle.fullname" -}}
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

{{- define "pgle.remediatorName" -}}
{{- printf "%s-remediator" (include "pgle.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pgle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "pgle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The exporter's pods. */}}
{{- define "pgle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: exporter
{{- end }}

{{/* The remediator's pods. */}}
{{- define "pgle.remediatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "pgle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: remediator
{{- end }}

{{- define "pgle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pgle.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pgle.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Multi-target mode: config.targets is not empty. */}}
{{- define "pgle.multiTarget" -}}
{{- if .Values.config.targets }}true{{ end }}
{{- end }}

{{/*
A libpq connection string from a datasource block, without any password (the binary refuses
one there). Values with spaces or quotes are single-quoted as libpq expects.
*/}}
{{- define "pgle.dsn" -}}
{{- $d := . -}}
{{- $parts := list -}}
{{- range $key, $value := dict "host" $d.host "port" (toString $d.port) "dbname" $d.database "user" $d.user "sslmode" $d.sslmode -}}
{{- if $value -}}
{{- $parts = append $parts (printf "%s=%s" $key (include "pgle.conninfoValue" $value)) -}}
{{- end -}}
{{- end -}}
{{- if $d.extraParams }}{{ $parts = append $parts $d.extraParams }}{{ end -}}
{{- join " " $parts -}}
{{- end }}

{{- define "pgle.conninfoValue" -}}
{{- if regexMatch "^[^\\s'\\\\]+$" . -}}
{{- . -}}
{{- else -}}
'{{ . | replace "\\" "\\\\" | replace "'" "\\'" }}'
{{- end -}}
{{- end }}

{{/*
Where a database password comes from: {name, key} of a Secret, or nothing.
Args: (dict "ds" datasource "existing" existingSecret "own" chartSecretName)
*/}}
{{- define "pgle.passwordRef" -}}
{{- if .existing -}}
{{- dict "name" .existing "key" "password" | toJson -}}
{{- else if .ds.passwordSecret.name -}}
{{- dict "name" .ds.passwordSecret.name "key" (default "password" .ds.passwordSecret.key) | toJson -}}
{{- else if .ds.password -}}
{{- dict "name" .own "key" "password" | toJson -}}
{{- else -}}
{{- dict | toJson -}}
{{- end -}}
{{- end }}

{{/* The web config has basic auth: kubelet probes cannot authenticate, so they use TCP. */}}
{{- define "pgle.probeHandler" -}}
{{- $web := .webConfig | default dict -}}
{{- if $web.basic_auth_users }}
tcpSocket:
  port: http
{{- else }}
httpGet:
  path: /-/healthy
  port: http
  scheme: {{ if $web.tls_server_config }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
{{- end }}
