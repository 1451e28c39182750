{{/*
Names.
*/}}
{{- define "weft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "weft.fullname" -}}
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

{{- define "weft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The headless Service (gossip seeds); its name leaves room for "-headless". */}}
{{- define "weft.headlessName" -}}
{{- printf "%s-headless" (include "weft.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "weft.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-auth" (include "weft.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "weft.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "weft.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "weft.searchSecretName" -}}
{{- if .Values.search.existingSecret }}
{{- .Values.search.existingSecret }}
{{- else }}
{{- printf "%s-search" (include "weft.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "weft.attachmentsSecretName" -}}
{{- if .Values.attachments.s3.existingSecret }}
{{- .Values.attachments.s3.existingSecret }}
{{- else }}
{{- printf "%s-attachments" (include "weft.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/* Do the pods get S3 keys for attachments (from a Secret)? "true" or "". */}}
{{- define "weft.attachmentsCredentials" -}}
{{- if or .Values.attachments.s3.existingSecret .Values.attachments.s3.accessKey .Values.attachments.s3.secretKey }}true{{ end }}
{{- end }}

{{- define "weft.notificationsSecretName" -}}
{{- if .Values.notifications.existingSecret }}
{{- .Values.notifications.existingSecret }}
{{- else }}
{{- printf "%s-notifications" (include "weft.fullname" . | trunc 49 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/* Do the pods get push or email secrets (from a Secret)? "true" or "". */}}
{{- define "weft.notificationsCredentials" -}}
{{- $n := .Values.notifications }}
{{- if or $n.existingSecret $n.fcmCredentials $n.vapidPrivateKey $n.smtpUrl $n.unsubscribeSecret }}true{{ end }}
{{- end }}

{{/* Do the pods get OpenSearch credentials (from a Secret)? "true" or "". */}}
{{- define "weft.searchCredentials" -}}
{{- if or .Values.search.existingSecret .Values.search.username .Values.search.password }}true{{ end }}
{{- end }}

{{- define "weft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "weft.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "weft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Labels.
*/}}
{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "weft.labels" -}}
helm.sh/chart: {{ include "weft.chart" . }}
{{ include "weft.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The configuration as a dict (returned as JSON): the values' `config` with the keys the
chart manages filled in, after checking what weft would refuse at start.
*/}}
{{- define "weft.configDict" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- range $section, $body := $cfg }}
{{- if not (kindIs "map" $body) }}
{{- fail (printf "config.%s must be a map of keys (a [%s] section of weft.toml)" $section $section) }}
{{- end }}
{{- end }}
{{- $managed := dict "server" (list "listen" "admin_key") "metrics" (list "token") "gossip" (list "gossip_listen" "gossip_advertise") "quic" (list "listen") "cluster" (list "node_id" "quic_advertise" "http_advertise") }}
{{- range $section, $keys := $managed }}
{{- $body := get $cfg $section | default dict }}
{{- range $keys }}
{{- if hasKey $body . }}
{{- fail (printf "config.%s.%s is managed by the chart: see ports, auth and tls in values.yaml" $section .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if hasKey $cfg "tls" }}
{{- fail "config.tls is managed by the chart: set tls.* (or tls.existingSecret) instead" }}
{{- end }}
{{- if hasKey $cfg "attachments" }}
{{- fail "config.attachments is managed by the chart: set attachments.* (backend, limits, s3.*) instead" }}
{{- end }}
{{- if hasKey $cfg "search" }}
{{- fail "config.search is managed by the chart: set search.* (backend, url, indexPrefix, timeoutMs, credentials) instead" }}
{{- end }}
{{- $server := get $cfg "server" | default dict }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.ports.http)) }}
{{- $_ := set $cfg "server" $server }}
{{- $gossip := get $cfg "gossip" | default dict }}
{{- $_ := set $gossip "gossip_listen" (printf "0.0.0.0:%d" (int .Values.ports.gossip)) }}
{{- if not (get $gossip "cluster_id") }}
{{- $_ := set $gossip "cluster_id" (include "weft.fullname" .) }}
{{- end }}
{{- if not (get $gossip "seeds") }}
{{- $_ := set $gossip "seeds" (list (printf "%s.%s.svc.%s:%d" (include "weft.headlessName" .) .Release.Namespace .Values.clusterDomain (int .Values.ports.gossip))) }}
{{- end }}
{{- $_ := set $cfg "gossip" $gossip }}
{{- $quic := get $cfg "quic" | default dict }}
{{- $_ := set $quic "listen" (printf "0.0.0.0:%d" (int .Values.ports.quic)) }}
{{- $_ := set $cfg "quic" $quic }}
{{- $_ := set $cfg "tls" (dict "ca_cert" "/etc/weft/tls/ca.pem" "node_cert" "/etc/weft/tls/node.pem" "node_key" "/etc/weft/tls/node.key") }}
{{- /* Checks weft makes at start, made here so that a bad release fails at install. */}}
{{- $store := get $cfg "store" | default dict }}
{{- $backend := get $store "backend" | default "embedded" }}
{{- $cluster := get $cfg "cluster" | default dict }}
{{- $redis := get $cfg "redis" | default dict }}
{{- $redisUrl := get $redis "url" | default "" }}
{{- $redisNodes := get $redis "cluster_nodes" | default list }}
{{- if and $redisUrl $redisNodes }}
{{- fail "config.redis: set either url or cluster_nodes (Redis Cluster), not both; set url to \"\" when using cluster_nodes" }}
{{- end }}
{{- if get $cluster "enabled" }}
{{- if ne $backend "cql" }}
{{- fail "config.cluster.enabled needs config.store.backend \"cql\"" }}
{{- end }}
{{- if not (or $redisUrl $redisNodes) }}
{{- fail "config.cluster.enabled needs Redis: set config.redis.url or config.redis.cluster_nodes" }}
{{- end }}
{{- end }}
{{- if eq $backend "embedded" }}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "config.store.backend \"embedded\" keeps the data on one pod: set replicaCount to 1 and autoscaling.enabled to false" }}
{{- end }}
{{- if get $cluster "enabled" }}
{{- fail "config.store.backend \"embedded\" needs config.cluster.enabled false" }}
{{- end }}
{{- else if ne $backend "cql" }}
{{- fail (printf "config.store.backend must be \"cql\" or \"embedded\", not %q" $backend) }}
{{- end }}
{{- /* [search] from the values' search block; the credentials go to the pods' env. */}}
{{- $s := .Values.search }}
{{- $search := dict "backend" $s.backend "index_prefix" $s.indexPrefix "timeout_ms" $s.timeoutMs }}
{{- if eq $s.backend "opensearch" }}
{{- $_ := set $search "url" (required "search.url is required when search.backend is \"opensearch\" (e.g. http://opensearch:9200)" $s.url) }}
{{- else if $s.url }}
{{- $_ := set $search "url" $s.url }}
{{- end }}
{{- if and (eq $s.backend "embedded") (ne $backend "embedded") }}
{{- fail "search.backend \"embedded\" keeps the index under the embedded store's data dir: it needs config.store.backend \"embedded\" (use \"opensearch\" or \"none\" with \"cql\")" }}
{{- end }}
{{- if and $s.existingSecret (or $s.username $s.password) }}
{{- fail "search: set either existingSecret or username/password, not both" }}
{{- end }}
{{- if and (or $s.username $s.password) (not (and $s.username $s.password)) }}
{{- fail "search.username and search.password go together (both empty: no authentication)" }}
{{- end }}
{{- $_ := set $cfg "search" $search }}
{{- /* [attachments] from the values' attachments block; the S3 keys go to the pods' env. */}}
{{- $a := .Values.attachments }}
{{- $attachments := dict "backend" $a.backend "max_size" $a.maxSize "max_per_message" $a.maxPerMessage "allowed_content_types" $a.allowedContentTypes "upload_url_ttl_secs" $a.uploadUrlTtlSecs "download_url_ttl_secs" $a.downloadUrlTtlSecs "s3_endpoint" $a.s3.endpoint "s3_bucket" $a.s3.bucket "s3_region" $a.s3.region "s3_path_style" $a.s3.pathStyle "s3_allow_http" $a.s3.allowHttp }}
{{- if and (eq $a.backend "s3") (not $a.s3.bucket) }}
{{- fail "attachments.s3.bucket is required when attachments.backend is \"s3\"" }}
{{- end }}
{{- if and (eq $a.backend "filesystem") (ne $backend "embedded") }}
{{- fail "attachments.backend \"filesystem\" keeps files on one pod: it needs config.store.backend \"embedded\" (use \"s3\" with \"cql\")" }}
{{- end }}
{{- if and $a.s3.existingSecret (or $a.s3.accessKey $a.s3.secretKey) }}
{{- fail "attachments.s3: set either existingSecret or accessKey/secretKey, not both" }}
{{- end }}
{{- if and (or $a.s3.accessKey $a.s3.secretKey) (not (and $a.s3.accessKey $a.s3.secretKey)) }}
{{- fail "attachments.s3.accessKey and attachments.s3.secretKey go together" }}
{{- end }}
{{- $_ := set $cfg "attachments" $attachments }}
{{- toJson $cfg }}
{{- end }}

{{/* One TOML value: strings (JSON escapes are TOML escapes), booleans, integers,
floats, arrays of those. Values arrive as float64 from YAML: integral ones are written
as integers. */}}
{{- define "weft.tomlValue" -}}
{{- $v := .v }}
{{- if kindIs "string" $v }}
{{- toJson $v }}
{{- else if kindIs "bool" $v }}
{{- ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 (int64 $v)) (float64 $v) }}
{{- int64 $v }}
{{- else }}
{{- $v }}
{{- end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}
{{- $v }}
{{- else if kindIs "slice" $v }}
{{- $path := .path }}
{{- $items := list }}
{{- range $v }}
{{- $items = append $items (include "weft.tomlValue" (dict "v" . "path" $path)) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else }}
{{- fail (printf "%s: a %s cannot be written to weft.toml (strings, numbers, booleans and lists only)" .path (kindOf $v)) }}
{{- end }}
{{- end }}

{{/* weft.toml: one [section] per key of the config dict, keys sorted. */}}
{{- define "weft.toml" -}}
# weft.toml, rendered by the {{ include "weft.chart" . }} chart from its values (config).
# Per pod, the environment adds: WEFT_CLUSTER_NODE_ID (the pod name),
# WEFT_GOSSIP_GOSSIP_ADVERTISE, WEFT_CLUSTER_QUIC_ADVERTISE, WEFT_CLUSTER_HTTP_ADVERTISE
# (the pod IP), WEFT_SERVER_ADMIN_KEY and WEFT_METRICS_TOKEN (from a Secret), and on the
# nodes WEFT_SEARCH_USERNAME and WEFT_SEARCH_PASSWORD when search credentials are set
# (from a Secret).
{{- $cfg := include "weft.configDict" . | fromJson }}
{{- range $section := keys $cfg | sortAlpha }}
{{- $body := get $cfg $section }}

[{{ $section }}]
{{- range $key := keys $body | sortAlpha }}
{{- $v := get $body $key }}
{{- if not (kindIs "invalid" $v) }}
{{ $key }} = {{ include "weft.tomlValue" (dict "v" $v "path" (printf "config.%s.%s" $section $key)) }}
{{- end }}
{{- end }}
{{- end }}
{{ end }}

{{/* The drain values, in ms, with weft's defaults. */}}
{{- define "weft.drainWindowMs" -}}
{{- $server := default dict .Values.config.server }}
{{- if hasKey $server "drain_window_ms" }}{{ int64 $server.drain_window_ms }}{{ else }}5000{{ end }}
{{- end }}

{{- define "weft.shutdownGraceMs" -}}
{{- $server := default dict .Values.config.server }}
{{- if hasKey $server "shutdown_grace_ms" }}{{ int64 $server.shutdown_grace_ms }}{{ else }}10000{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: preStop sleep + ceil((drain window + shutdown grace) / 1 s)
+ margin, or the explicit value when it covers the preStop sleep, drain and grace.
*/}}
{{- define "weft.terminationGracePeriodSeconds" -}}
{{- $ms := add (include "weft.drainWindowMs" . | int64) (include "weft.shutdownGraceMs" . | int64) }}
{{- $needed := add (int64 .Values.shutdown.preStopSleepSeconds) (div (add $ms 999) 1000) }}
{{- $explicit := .Values.shutdown.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $explicit }}
{{- add $needed (int64 .Values.shutdown.marginSeconds) }}
{{- else if lt (int64 $explicit) $needed }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) is below preStopSleepSeconds + drain window + shutdown grace (%d s): the node would be killed while draining" (int64 $explicit) $needed) }}
{{- else }}
{{- int64 $explicit }}
{{- end }}
{{- end }}

{{/* Environment of every weft container (the nodes and the migrate Job). */}}
{{- define "weft.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: WEFT_CONFIG
  value: /etc/weft/weft.toml
- name: WEFT_CLUSTER_NODE_ID
  value: $(POD_NAME)
- name: WEFT_GOSSIP_GOSSIP_ADVERTISE
  value: $(POD_IP):{{ .Values.ports.gossip }}
- name: WEFT_CLUSTER_QUIC_ADVERTISE
  value: $(POD_IP):{{ .Values.ports.quic }}
- name: WEFT_CLUSTER_HTTP_ADVERTISE
  value: $(POD_IP):{{ .Values.ports.http }}
{{- end }}

{{/* Pod-level fields shared by the nodes and the migrate Job. */}}
{{- define "weft.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Is the store the embedded one? "true" or "". */}}
{{- define "weft.embedded" -}}
{{- $store := default dict .Values.config.store }}
{{- if eq (default "embedded" $store.backend) "embedded" }}true{{ end }}
{{- end }}

{{/* TLS to Redis and to the CQL nodes (tls.redis, tls.cql): the WEFT_* variables naming
the mounted files, for the nodes and the migrate Job. */}}
{{- define "weft.backendTls.env" -}}
{{- range $name, $dir := dict "redis" "redis-tls" "cql" "cql-tls" }}
{{- $tls := get $.Values.tls $name }}
{{- if $tls.secretName }}
- name: WEFT_{{ upper $name }}_TLS_CA_FILE
  value: /etc/weft-{{ $dir }}/ca.crt
{{- if $tls.clientCert }}
- name: WEFT_{{ upper $name }}_TLS_CERT_FILE
  value: /etc/weft-{{ $dir }}/tls.crt
- name: WEFT_{{ upper $name }}_TLS_KEY_FILE
  value: /etc/weft-{{ $dir }}/tls.key
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "weft.backendTls.mounts" -}}
{{- range $name, $dir := dict "redis" "redis-tls" "cql" "cql-tls" }}
{{- if (get $.Values.tls $name).secretName }}
- name: {{ $dir }}
  mountPath: /etc/weft-{{ $dir }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "weft.backendTls.volumes" -}}
{{- range $name, $dir := dict "redis" "redis-tls" "cql" "cql-tls" }}
{{- with (get $.Values.tls $name).secretName }}
- name: {{ $dir }}
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}

{{/* A probe from values, over https when the pods serve it (tls.http.secretName).
Called with (list $ probe). */}}
{{- define "weft.probe" -}}
{{- $root := index . 0 }}
{{- $probe := deepCopy (index . 1) }}
{{- if and $root.Values.tls.http.secretName $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
