package deploycheck_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/flowyard/flowyard/config"
)

// withMQTT replaces the production values' mqtt section.
func withMQTT(mqtt map[string]any) map[string]any {
	v := productionValues()
	v["mqtt"] = mqtt
	return v
}

// loadServeConfig reads the rendered ConfigMap the way `flowyard serve` reads its environment in the API pods.
func loadServeConfig(t *testing.T, objs manifests) config.Config {
	t.Helper()
	data := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data
	cfg, err := config.Load("serve", nil, func(k string) string { return data[k] })
	require.NoError(t, err)
	return cfg
}

func apiPod(objs manifests) corev1.PodTemplateSpec {
	return objs["Deployment/prod-flowyard-api"].(*appsv1.Deployment).Spec.Template
}

// containerPort is the API container's port of that name, 0 when it has none.
func containerPort(pod corev1.PodTemplateSpec, name string) int32 {
	for _, p := range pod.Spec.Containers[0].Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// servesAPIPods: the Service selects the API pods (not the worker's) and sends its one port to the API
// container's named port, which is where the broker listens.
func servesAPIPods(t *testing.T, objs manifests, svc *corev1.Service, portName string, listen string) {
	t.Helper()
	pod := apiPod(objs)
	assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)), "%s selects the API pods", svc.Name)
	worker := objs["Deployment/prod-flowyard-worker"].(*appsv1.Deployment).Spec.Template
	assert.False(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(worker.Labels)), "%s leaves the worker out", svc.Name)
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, portName, svc.Spec.Ports[0].TargetPort.StrVal)
	_, port, err := splitHostPort(listen)
	require.NoError(t, err)
	assert.Equal(t, port, containerPort(pod, portName), "the broker listens on the container port the Service targets")
}

// TestMQTTOverTLSTerminatedByFlowyard: a LoadBalancer Service on 8883 reaches the API pods' broker, which listens
// on every pod address with the certificate of the mounted Secret; devices are told mqtts://<host>:8883.
func TestMQTTOverTLSTerminatedByFlowyard(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	svc := objs["Service/prod-flowyard-mqtt"].(*corev1.Service)
	assert.Equal(t, corev1.ServiceTypeLoadBalancer, svc.Spec.Type)
	assert.Equal(t, int32(8883), svc.Spec.Ports[0].Port)
	cfg := loadServeConfig(t, objs)
	servesAPIPods(t, objs, svc, "mqtt", cfg.MQTTListen)
	assert.Equal(t, "0.0.0.0:1884", cfg.MQTTListen)
	assert.Equal(t, "mqtts://mqtt.example.com:8883", cfg.MQTTPublicURL)

	assert.Equal(t, "/etc/flowyard/mqtt-tls/tls.crt", cfg.MQTTTLSCert)
	assert.Equal(t, "/etc/flowyard/mqtt-tls/tls.key", cfg.MQTTTLSKey)
	pod := apiPod(objs).Spec
	var mount *corev1.VolumeMount
	for i, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath == filepath.Dir(cfg.MQTTTLSCert) {
			mount = &pod.Containers[0].VolumeMounts[i]
		}
	}
	require.NotNil(t, mount, "the certificate's folder is mounted")
	assert.Empty(t, mount.SubPath, "a directory mount, so a renewed Secret reaches the running pod")
	var secret string
	for _, v := range pod.Volumes {
		if v.Name == mount.Name && v.Secret != nil {
			secret = v.Secret.SecretName
		}
	}
	assert.Equal(t, "mqtt-tls", secret, "a kubernetes.io/tls Secret holds tls.crt and tls.key")
	worker := objs["Deployment/prod-flowyard-worker"].(*appsv1.Deployment).Spec.Template.Spec
	for _, v := range worker.Volumes {
		assert.NotEqual(t, "mqtt-tls", v.Name, "the worker runs no broker")
	}
	assert.Zero(t, containerPort(objs["Deployment/prod-flowyard-worker"].(*appsv1.Deployment).Spec.Template, "mqtt"))
}

func TestMQTTTLSTerminatedByTheLoadBalancer(t *testing.T) {
	annotations := map[string]any{"service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
		"service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "8883"}
	objs, _ := decode(t, render(t, withMQTT(map[string]any{"tcp": map[string]any{"enabled": true, "host": "mqtt.example.com",
		"service": map[string]any{"annotations": annotations, "loadBalancerSourceRanges": []any{"203.0.113.0/24"}},
		"tls":     map[string]any{"terminatedBy": "loadBalancer"}}})))
	svc := objs["Service/prod-flowyard-mqtt"].(*corev1.Service)
	assert.Equal(t, "8883", svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"])
	assert.Equal(t, []string{"203.0.113.0/24"}, svc.Spec.LoadBalancerSourceRanges)
	cfg := loadServeConfig(t, objs)
	servesAPIPods(t, objs, svc, "mqtt", cfg.MQTTListen)
	assert.Empty(t, cfg.MQTTTLSCert, "the pods speak plain MQTT behind the load balancer")
	assert.Equal(t, "mqtts://mqtt.example.com:8883", cfg.MQTTPublicURL, "devices still use TLS, to the load balancer")
	for _, v := range apiPod(objs).Spec.Volumes {
		assert.NotEqual(t, "mqtt-tls", v.Name)
	}

	objs, _ = decode(t, render(t, withMQTT(map[string]any{"tcp": map[string]any{"enabled": true, "host": "mqtt.example.com",
		"service": map[string]any{"port": 1883}, "tls": map[string]any{"terminatedBy": "none"}}})))
	assert.Equal(t, "mqtt://mqtt.example.com:1883", loadServeConfig(t, objs).MQTTPublicURL, "plain MQTT end to end")
}

func TestMQTTOnANodePort(t *testing.T) {
	nodePort := func(port any) map[string]any {
		return withMQTT(map[string]any{"tcp": map[string]any{"enabled": true, "host": "mqtt.example.com",
			"service": map[string]any{"type": "NodePort", "nodePort": port}, "tls": map[string]any{"existingSecret": "mqtt-tls"}}})
	}
	objs, _ := decode(t, render(t, nodePort(30883)))
	svc := objs["Service/prod-flowyard-mqtt"].(*corev1.Service)
	assert.Equal(t, corev1.ServiceTypeNodePort, svc.Spec.Type)
	assert.Equal(t, int32(30883), svc.Spec.Ports[0].NodePort)
	assert.Equal(t, "mqtts://mqtt.example.com:30883", loadServeConfig(t, objs).MQTTPublicURL, "devices connect to the node port")

	_, err := renderErr(nodePort(nil))
	assert.ErrorContains(t, err, "mqtt.tcp.service.nodePort (or mqtt.publicURL) is needed with a NodePort Service")
	_, err = renderErr(nodePort(8883))
	assert.ErrorContains(t, err, "/mqtt/tcp/service/nodePort", "outside the node port range")
}

// TestMQTTOverWebSocketThroughTheIngress: the Ingress sends its own host's "/" (where device agents open the
// WebSocket) to the API pods' WebSocket listener; devices are told wss://<host>.
func TestMQTTOverWebSocketThroughTheIngress(t *testing.T) {
	v := withMQTT(map[string]any{"websocket": map[string]any{"enabled": true, "host": "mqtt-ws.example.com", "className": "nginx",
		"tlsSecretName": "mqtt-ws-tls", "annotations": map[string]any{"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}}})
	objs, _ := decode(t, render(t, v))
	assert.NotContains(t, objs, "Service/prod-flowyard-mqtt", "no TCP Service unless asked")
	ing := objs["Ingress/prod-flowyard-mqtt-ws"].(*networkingv1.Ingress)
	assert.Equal(t, "3600", ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
	assert.Equal(t, "nginx", *ing.Spec.IngressClassName)
	assert.Equal(t, []networkingv1.IngressTLS{{Hosts: []string{"mqtt-ws.example.com"}, SecretName: "mqtt-ws-tls"}}, ing.Spec.TLS)
	require.Len(t, ing.Spec.Rules, 1)
	rule := ing.Spec.Rules[0]
	assert.Equal(t, "mqtt-ws.example.com", rule.Host)
	require.Len(t, rule.HTTP.Paths, 1)
	path := rule.HTTP.Paths[0]
	assert.Equal(t, "/", path.Path, "the FlowFuse agent always opens the WebSocket at /")
	assert.Equal(t, networkingv1.PathTypePrefix, *path.PathType)
	svc := objs["Service/"+path.Backend.Service.Name].(*corev1.Service)
	assert.Equal(t, svc.Spec.Ports[0].Name, path.Backend.Service.Port.Name)
	cfg := loadServeConfig(t, objs)
	servesAPIPods(t, objs, svc, "mqtt-ws", cfg.MQTTWSListen)
	assert.Equal(t, "0.0.0.0:1885", cfg.MQTTWSListen)
	assert.Equal(t, "wss://mqtt-ws.example.com", cfg.MQTTPublicURL)
	assert.Equal(t, "127.0.0.1:1884", cfg.MQTTListen, "the TCP listener nothing exposes stays on the pod's loopback")

	v["mqtt"].(map[string]any)["publicURL"] = "wss://devices.example.com"
	objs, _ = decode(t, render(t, v))
	assert.Equal(t, "wss://devices.example.com", loadServeConfig(t, objs).MQTTPublicURL, "an explicit URL wins")
}

func TestWithoutMQTTExposedDevicesGetNoBroker(t *testing.T) {
	objs, _ := decode(t, render(t, withMQTT(map[string]any{})))
	for _, k := range []string{"Service/prod-flowyard-mqtt", "Service/prod-flowyard-mqtt-ws", "Ingress/prod-flowyard-mqtt-ws"} {
		assert.NotContains(t, objs, k)
	}
	cfg := loadServeConfig(t, objs)
	assert.Empty(t, cfg.MQTTPublicURL, "devices check in over HTTP rather than dial a broker they cannot reach")
	assert.Equal(t, "127.0.0.1:1884", cfg.MQTTListen)
	assert.Equal(t, "127.0.0.1:1885", cfg.MQTTWSListen)
	assert.Zero(t, containerPort(apiPod(objs), "mqtt"))
}

func TestMQTTValuesFailWithAClearMessage(t *testing.T) {
	for want, mqtt := range map[string]map[string]any{
		"mqtt.tcp.host (the name devices connect to) or mqtt.publicURL is needed": {"tcp": map[string]any{"enabled": true,
			"tls": map[string]any{"existingSecret": "mqtt-tls"}}},
		"mqtt.tcp.tls.existingSecret (a Secret with tls.crt and tls.key) is needed": {"tcp": map[string]any{"enabled": true,
			"host": "mqtt.example.com"}},
		"mqtt.websocket.host is needed": {"websocket": map[string]any{"enabled": true}},
		"/mqtt/tcp/tls/terminatedBy":    {"tcp": map[string]any{"tls": map[string]any{"terminatedBy": "ingress"}}},
		"/mqtt/tcp/service/type":        {"tcp": map[string]any{"service": map[string]any{"type": "ClusterIP"}}},
		"/mqtt/publicURL":               {"publicURL": "https://mqtt.example.com"},
		"/networkPolicy/deniedCIDRs/0":  nil, // a bare address is not a range
	} {
		v := withMQTT(mqtt)
		if mqtt == nil {
			v["networkPolicy"] = map[string]any{"deniedCIDRs": []any{"203.0.113.7"}}
		}
		_, err := renderErr(v)
		assert.ErrorContains(t, err, want)
	}
}

// splitHostPort splits a listen address into its host and numeric port.
func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseInt(port, 10, 32)
	return host, int32(n), err
}

// TestDocumentedValuesRender: the values-prod.yaml that deploy/README.md shows renders, and gives devices the
// broker it describes.
func TestDocumentedValuesRender(t *testing.T) {
	readme, err := os.ReadFile("../../deploy/README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "`values-prod.yaml`:\n\n```yaml\n")
	require.True(t, ok, "the values block of deploy/README.md")
	block, _, _ := strings.Cut(rest, "```")
	var values map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(block), &values))
	objs, _ := decode(t, render(t, values))
	assert.Equal(t, "mqtts://mqtt.example.com:8883", loadServeConfig(t, objs).MQTTPublicURL)
	assert.Contains(t, objs, "NetworkPolicy/prod-flowyard-instances")
	assert.Contains(t, objs, "Ingress/prod-flowyard-mqtt-ws")
}
