{{- define "pf-webhook.fullname" -}}
{{- if contains "pf-webhook" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pf-webhook" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pf-webhook.labels" -}}
app.kubernetes.io/name: pf-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pulsar-functions
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pf-webhook.selector" -}}
app: {{ include "pf-webhook.fullname" . }}
{{- end -}}

{{- define "pf-webhook.certSecret" -}}
{{- .Values.certificates.manage.secretName | default (printf "%s-certs" (include "pf-webhook.fullname" .)) -}}
{{- end -}}

{{- define "pf-webhook.tlsSecret" -}}
{{- if eq .Values.certificates.mode "existingSecret" -}}
{{- required "certificates.existingSecret.name is required with mode existingSecret" .Values.certificates.existingSecret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "pf-webhook.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "pf-webhook.checkValues" -}}
{{- if not (has .Values.certificates.mode (list "manage" "certManager" "existingSecret")) -}}
{{- fail (printf "certificates.mode must be manage, certManager or existingSecret, not %q" .Values.certificates.mode) -}}
{{- end -}}
{{- if not (has .Values.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "failurePolicy must be Fail or Ignore, not %q" .Values.failurePolicy) -}}
{{- end -}}
{{- if not (has .Values.enforcement (list "deny" "warn" "audit")) -}}
{{- fail (printf "enforcement must be deny, warn or audit, not %q" .Values.enforcement) -}}
{{- end -}}
{{- if not .Values.functionNamespaces -}}
{{- fail "functionNamespaces: list the namespaces where functions run (the worker's jobNamespace; Pulsar's default is \"default\")" -}}
{{- end -}}
{{- end -}}

{{/* One webhook entry; dict: root, name, path, optIn */}}
{{- define "pf-webhook.webhook" -}}
{{- $root := .root -}}
- name: {{ .name }}
  clientConfig:
    service:
      name: {{ include "pf-webhook.fullname" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ .path }}
      port: 443
    {{- if eq $root.Values.certificates.mode "existingSecret" }}
    caBundle: {{ required "certificates.existingSecret.caBundle is required with mode existingSecret" $root.Values.certificates.existingSecret.caBundle }}
    {{- end }}
  sideEffects: None
  timeoutSeconds: {{ $root.Values.timeoutSeconds }}
  matchPolicy: Equivalent
  admissionReviewVersions: [v1]
  # README "failurePolicy" explains the choice; "Disable in an emergency" the way out.
  failurePolicy: {{ $root.Values.failurePolicy }}
  rules:
    - apiGroups: [apps]
      apiVersions: [v1]
      resources: [statefulsets]
      operations: [CREATE, UPDATE]
      scope: Namespaced
    # the worker creates the function's Service first, with the same labels
    - apiGroups: [""]
      apiVersions: [v1]
      resources: [services]
      operations: [CREATE, UPDATE]
      scope: Namespaced
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values: [kube-system, {{ $root.Release.Namespace }}]
  objectSelector:
  {{- if .optIn }}
    matchLabels:
      pf-webhook/enabled: "true"
  {{- else }}
    # the four labels the worker always sets; options can change their values, not remove
    # them, so no option moves a function out of reach (pf-webhook decides from the selector)
    matchExpressions:
      - {key: component, operator: Exists}
      - {key: tenant, operator: Exists}
      - {key: namespace, operator: Exists}
      - {key: name, operator: Exists}
  {{- end }}
  {{- if .mutating }}
  reinvocationPolicy: IfNeeded
  {{- end }}
{{- end -}}

{{- define "pf-webhook.annotations" -}}
{{- if eq .Values.certificates.mode "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "pf-webhook.fullname" . }}
{{- end }}
{{- end -}}
