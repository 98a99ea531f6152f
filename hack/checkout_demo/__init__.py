"""The three-region checkout demo and its GameDay (`make demo`, `make gameday`).

Starts a management control plane (kube-apiserver + etcd + kwok: kwok stands in for kubelets,
so no container runs), installs the operator's Helm chart, runs the operator as a local process,
applies the demo fleet (fleet/ beside this file), and plays the kubelet: each region's checkout
services run as local processes configured from the ConfigMaps and Secrets the operator's
Deployments reference. Then it drives checkouts, breaks a region, and checks the promises.

This is hack code: the operator and the services never import it.
"""
