{{/* Resource names are <fullname>-<component>; fullname is the release name by default. */}}
{{- define "ims-testbed.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "ims-testbed.name" -}}
{{- printf "%s-%s" (include "ims-testbed.fullname" .root) .component -}}
{{- end -}}

{{/* A Service's fully qualified name: <fullname>-<component>.<namespace>.svc.<domain> */}}
{{- define "ims-testbed.fqdn" -}}
{{- printf "%s.%s.svc.%s" (include "ims-testbed.name" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "ims-testbed.selectorLabels" -}}
app.kubernetes.io/name: ims-testbed
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ims-testbed.labels" -}}
{{ include "ims-testbed.selectorLabels" . }}
app.kubernetes.io/part-of: ims-testbed
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "ims-testbed.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* env entries from a map of NAME: value, leaving out the names in .skip (set by the chart) */}}
{{- define "ims-testbed.env" -}}
{{- $skip := .skip }}
{{- range $name, $value := .env }}
{{- if not (has $name $skip) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "ims-testbed.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- include "ims-testbed.name" (dict "root" . "component" "database") -}}
{{- end -}}
{{- end -}}

{{- define "ims-testbed.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ims-testbed.databaseSecret" . }}
      key: DATABASE_URL
{{- end -}}

{{- define "ims-testbed.externalDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "ims-testbed.controllerUrl" -}}
{{- printf "http://%s:%v" (include "ims-testbed.fqdn" (dict "root" . "component" "sip-controller")) .Values.sipController.port -}}
{{- end -}}

{{/* terminationGracePeriodSeconds of a proxy: the controller's drain grace plus a margin */}}
{{- define "ims-testbed.proxyGraceSeconds" -}}
{{- add (int (ceil (float64 .Values.sipController.env.DRAIN_GRACE_SECONDS))) .Values.sipProxy.terminationMarginSeconds -}}
{{- end -}}

{{/* true when the analyzer runs as a native sidecar (restartPolicy Always init container) */}}
{{- define "ims-testbed.nativeSidecar" -}}
{{- $mode := toString .Values.sipProxy.analyzer.nativeSidecar -}}
{{- if eq $mode "true" -}}true
{{- else if and (eq $mode "auto") (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version) -}}true
{{- end -}}
{{- end -}}

{{/* the init container that waits until the schema Kamailio checks at start-up exists */}}
{{- define "ims-testbed.waitForSchema" -}}
- name: wait-for-schema
  image: {{ include "ims-testbed.image" .Values.sipController.image }}
  imagePullPolicy: {{ .Values.global.imagePullPolicy }}
  command: ["testbed-db-init", "--mode", "check", "--timeout", {{ .Values.database.init.timeoutSeconds | quote }}]
  env:
    {{- include "ims-testbed.databaseUrlEnv" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 64Mi}
    limits: {memory: 256Mi}
{{- end -}}

{{- define "ims-testbed.podCommon" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (merge (dict) (.nodeSelector | default dict) .root.Values.global.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat (.tolerations | default list) .root.Values.global.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* LOADBALANCER_RPC_URLS: one URL per load balancer pod the controller must reload */}}
{{- define "ims-testbed.loadbalancerRpcUrls" -}}
{{- $lb := dict "root" . "component" "sip-loadb" -}}
{{- $port := .Values.sipLoadb.httpPort -}}
{{- if eq .Values.sipLoadb.workload "StatefulSet" -}}
{{- $urls := list -}}
{{- $headless := include "ims-testbed.fqdn" (dict "root" . "component" "sip-loadb-pods") -}}
{{- range $i := until (int .Values.sipLoadb.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s:%v/RPC" (include "ims-testbed.name" $lb) $i $headless $port) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else if eq .Values.sipLoadb.workload "Deployment" -}}
{{- if ne (int .Values.sipLoadb.replicas) 1 -}}
{{- fail "sipLoadb: a Deployment is reached through its Service, so the sip-controller could reload only one of its replicas; keep replicas 1 or use workload StatefulSet" -}}
{{- end -}}
{{- printf "http://%s:%v/RPC" (include "ims-testbed.fqdn" $lb) $port -}}
{{- else -}}
{{- fail "sipLoadb.workload must be Deployment or StatefulSet" -}}
{{- end -}}
{{- end -}}

{{/* the analyzer beside a proxy: .native (an init container with restartPolicy Always) */}}
{{- define "ims-testbed.analyzerContainer" -}}
{{- $root := .root -}}
{{- $a := $root.Values.sipProxy.analyzer -}}
- name: analyzer
  image: {{ include "ims-testbed.image" $a.image }}
  imagePullPolicy: {{ $root.Values.global.imagePullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    # the proxy's SIP socket: the pod's address, shared by every container of the pod
    - name: ANALYZER_PROXY_ADDRESS
      value: "$(POD_IP):{{ $root.Values.sipProxy.sipPort }}"
    - name: ANALYZER_PROXY_NAME
      value: "$(POD_NAME)"
    - name: ANALYZER_INTERFACE
      value: eth0
    - name: ANALYZER_HTTP_HOST
      value: "0.0.0.0"
    - name: ANALYZER_HTTP_PORT
      value: {{ $a.port | quote }}
    {{- include "ims-testbed.env" (dict "env" $a.env "skip" (list "POD_NAME" "POD_IP" "ANALYZER_PROXY_ADDRESS" "ANALYZER_PROXY_NAME" "ANALYZER_INTERFACE" "ANALYZER_HTTP_HOST" "ANALYZER_HTTP_PORT")) | nindent 4 }}
  ports:
    - name: analyzer
      containerPort: {{ $a.port }}
      protocol: TCP
  {{- if .native }}
  startupProbe:
    httpGet:
      path: /health
      port: analyzer
    periodSeconds: 1
    failureThreshold: 60
  {{- end }}
  readinessProbe:
    httpGet:
      path: /health
      port: analyzer
    periodSeconds: 5
    timeoutSeconds: 5
  {{- if not .native }}
  lifecycle:
    # keep capturing while the proxy drains (all containers get SIGTERM at once)
    preStop:
      exec:
        command: ["sleep", "{{ sub .grace 5 }}"]
  {{- end }}
  # AF_PACKET capture: the image gives its interpreter CAP_NET_RAW as a file capability, which
  # needs NET_RAW in the bounding set and no no-new-privileges (allowPrivilegeEscalation)
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    allowPrivilegeEscalation: true
    capabilities:
      drop: [ALL]
      add: [NET_RAW]
  resources:
    {{- toYaml $a.resources | nindent 4 }}
{{- end -}}
