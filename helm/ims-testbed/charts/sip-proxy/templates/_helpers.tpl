{{/* The proxies' own helpers; the shared ones are in the common library chart. */}}

{{/* terminationGracePeriodSeconds of a proxy: the controller's drain grace plus a margin */}}
{{- define "sip-proxy.graceSeconds" -}}
{{- add (int (ceil (float64 .Values.global.sipController.drainGraceSeconds))) .Values.terminationMarginSeconds -}}
{{- end -}}

{{/* true when the analyzer runs as a native sidecar (restartPolicy Always init container) */}}
{{- define "sip-proxy.nativeSidecar" -}}
{{- $mode := toString .Values.analyzer.nativeSidecar -}}
{{- if eq $mode "true" -}}true
{{- else if and (eq $mode "auto") (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version) -}}true
{{- end -}}
{{- end -}}

{{/* the analyzer beside a proxy: .native (an init container with restartPolicy Always) */}}
{{- define "sip-proxy.analyzerContainer" -}}
{{- $root := .root -}}
{{- $a := $root.Values.analyzer -}}
- name: analyzer
  image: {{ include "ims-testbed.image" (dict "root" $root "image" $a.image) }}
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
      value: "$(POD_IP):{{ $root.Values.global.sipProxy.sipPort }}"
    - name: ANALYZER_PROXY_NAME
      value: "$(POD_NAME)"
    - name: ANALYZER_INTERFACE
      value: eth0
    - name: ANALYZER_HTTP_HOST
      value: "0.0.0.0"
    - name: ANALYZER_HTTP_PORT
      value: {{ $a.port | quote }}
    {{- /* no API_TOKEN: its API is read-only, and this container holds NET_RAW */}}
    {{- include "ims-testbed.env" (dict "env" $a.env "skip" (list "POD_NAME" "POD_IP" "ANALYZER_PROXY_ADDRESS" "ANALYZER_PROXY_NAME" "ANALYZER_INTERFACE" "ANALYZER_HTTP_HOST" "ANALYZER_HTTP_PORT" "API_TOKEN")) | nindent 4 }}
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
