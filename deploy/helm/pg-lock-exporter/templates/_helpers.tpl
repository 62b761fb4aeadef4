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

{{/*
The web config the exporter reads (--web.config.file): config.webConfig, plus with config.tls.enabled
a tls_server_config naming the files that exporter.yaml mounts from config.tls's Secrets under
/etc/pg-lock-exporter/tls. Empty when neither is set.
*/}}
{{- define "pgle.webConfig" -}}
{{- $web := deepCopy (.Values.config.webConfig | default dict) -}}
{{- $tls := .Values.config.tls -}}
{{- if $tls.enabled -}}
{{- if $web.tls_server_config -}}
{{- fail "config.tls.enabled: config.webConfig.tls_server_config is set too; configure TLS in one of them" -}}
{{- end -}}
{{- $server := dict "cert_file" "/etc/pg-lock-exporter/tls/tls.crt" "key_file" "/etc/pg-lock-exporter/tls/tls.key" "min_version" $tls.minVersion -}}
{{- if $tls.clientCA.secretName -}}
{{- $_ := set $server "client_ca_file" "/etc/pg-lock-exporter/tls/client-ca.crt" -}}
{{- $_ := set $server "client_auth_type" $tls.clientAuthType -}}
{{- end -}}
{{- $_ := set $web "tls_server_config" $server -}}
{{- end -}}
{{- if $web }}{{ toYaml $web }}{{ end -}}
{{- end }}

{{/*
The kubelet's probe of the exporter, given the rendered web config. The kubelet sends neither
credentials nor a client certificate (and does not verify the server's certificate): with basic
auth, or with client_auth_type RequireAnyClientCert / RequireAndVerifyClientCert (the server's
default when a client CA is given), /-/healthy would answer 401/403 and liveness would restart
the pod forever, so the probes then check that the port accepts connections (tcpSocket).
RequestClientCert and VerifyClientCertIfGiven let a request without a certificate through:
the probes stay httpGet of /-/healthy over HTTPS.
*/}}
{{- define "pgle.probeHandler" -}}
{{- $web := . | default dict -}}
{{- $server := $web.tls_server_config | default dict -}}
{{- $clientCA := or $server.client_ca_file $server.client_ca -}}
{{- $auth := $server.client_auth_type | default (ternary "RequireAndVerifyClientCert" "NoClientCert" (not (empty $clientCA))) -}}
{{- if or $web.basic_auth_users (has $auth (list "RequireAnyClientCert" "RequireAndVerifyClientCert")) }}
tcpSocket:
  port: http
{{- else }}
httpGet:
  path: /-/healthy
  port: http
  scheme: {{ if $web.tls_server_config }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
{{- end }}

{{/*
The scheme a ServiceMonitor, PodMonitor or Probe scrapes with must be the one the exporter
serves: https exactly when the web config has tls_server_config. Otherwise every scrape fails
(PostgresExporterDown) although the pods are healthy.
Args: (dict "root" $ "field" "serviceMonitor.scheme" "scheme" $sm.scheme)
*/}}
{{- define "pgle.checkScheme" -}}
{{- $tls := hasKey (include "pgle.webConfig" .root | fromYaml | default dict) "tls_server_config" -}}
{{- if and $tls (ne .scheme "https") -}}
{{- fail (printf "%s: the exporter serves TLS (config.tls or config.webConfig.tls_server_config); scrape with https" .field) -}}
{{- else if and (not $tls) (eq .scheme "https") -}}
{{- fail (printf "%s: https, but the exporter serves plain HTTP; enable config.tls (or config.webConfig.tls_server_config)" .field) -}}
{{- end -}}
{{- end }}

{{/* "true" while sampling is on (config.sampleInterval not 0): blocking episodes are recorded
then, into the file on the episodes volume. */}}
{{- define "pgle.episodesOn" -}}
{{- if not (has (toString .Values.config.sampleInterval) (list "0" "0s")) }}true{{ end }}
{{- end }}

{{/* The episodes volume's claim: a Deployment's one claim (existingClaim or the chart's own). */}}
{{- define "pgle.episodesClaim" -}}
{{- default (printf "%s-episodes" (include "pgle.fullname" .)) .Values.episodes.persistence.existingClaim }}
{{- end }}

{{/* The chart's PersistentVolumeClaim spec for episodes (its own claim or each shard's). */}}
{{- define "pgle.episodesClaimSpec" -}}
accessModes:
  {{- toYaml .Values.episodes.persistence.accessModes | nindent 2 }}
{{- with .Values.episodes.persistence.storageClass }}
storageClassName: {{ if eq . "-" }}""{{ else }}{{ . | quote }}{{ end }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.episodes.persistence.size | quote }}
{{- end }}

{{- /* "true" when some config.targets entry names PgBouncers (multi-target mode). */ -}}
{{- define "pgle.anyTargetPooler" -}}
{{- range .Values.config.targets }}{{ if .pgbouncers }}true{{ end }}{{ end -}}
{{- end -}}
