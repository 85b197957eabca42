package nodered

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// StoragePluginFile is the file name WriteStoragePlugin writes.
const StoragePluginFile = "flowyard-storage.js"

//go:embed plugin/flowyard-storage.js
var storagePluginJS []byte

// StoragePluginEnv returns the environment entries the storage plugin needs.
func StoragePluginEnv(forgeURL, instanceID, token string) []string {
	return []string{
		EnvForgeURL + "=" + forgeURL,
		EnvInstanceID + "=" + instanceID,
		EnvInstanceToken + "=" + token,
	}
}

// WriteStoragePlugin writes the Node-RED storage plugin into dir and returns
// its absolute path, for SettingsParams.StorageModule. The file is replaced
// atomically, so a Node-RED starting at the same moment never reads half of it.
func WriteStoragePlugin(dir string) (path string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+StoragePluginFile+".*")
	if err != nil {
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(storagePluginJS); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	path = filepath.Join(dir, StoragePluginFile)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write storage plugin: %w", err)
	}
	return path, nil
}
