// Package nodered holds everything Flowyard knows about Node-RED itself: the
// credential file format, installing Node-RED "stacks" with npm, rendering a
// settings.js per instance, and the storage plugin that keeps an instance's
// flows and credentials in the platform instead of on the instance's disk.
package nodered
