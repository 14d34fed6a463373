// HTC-Grid configuration keys that carry over but mean nothing here: accepted and ignored on purpose, each with why,
// so an existing python_runtime_grid_config.json (or -c key=value) keeps working and the user is told what does not
// apply. Every other unknown key is an error with "did you mean" (config files and CDK context alike).

/**
 * HTC-Grid configuration keys accepted and ignored on purpose, with why: an HTC-Grid config passed with -c (or
 * key by key) keeps working, and the user is told what does not apply.
 */
export const IGNORED_HTCGRID_KEYS: Readonly<Record<string, string>> = {
  grid_storage_service: 'the data plane is S3 (large payloads), with small ones inline in the table',
  worker_backend: 'use -c compute=ecs (the default) or -c compute=eks',
  dynamodb_default_read_capacity: 'the table is on demand; for provisioned use table_capacity=provisioned',
  dynamodb_default_write_capacity: 'the table is on demand; for provisioned use table_capacity=provisioned',
  dynamodb_billing_mode: 'use table_capacity',
  dynamodb_autoscaling_enabled: 'table_capacity=provisioned always auto-scales',
  eks_worker_groups: 'EKS nodes come from EKS Auto Mode (managed Karpenter): -c compute=eks, Spot with -c spot',
  enable_private_subnet: 'tasks always run in private subnets; nat_gateways decides internet access',
  vpc_cidr_block_public: 'the VPC is laid out by CDK',
  vpc_cidr_block_private: 'the VPC is laid out by CDK',
  input_role: 'no aws-auth map: clients get access with HtcGrid.grantSubmit',
  ec2_worker_vcpus: 'EC2 agents are sized by cpu and memory',
  ec2_worker_memory_mb: 'EC2 agents are sized by cpu and memory',
  orb_max_instances: 'use ec2_max_instances',
  orb_target_pending_per_pair: 'use scaling_target',
  orb_min_vcpus: 'use min_agents',
  orb_max_vcpus: 'use max_agents',
  orb_control_interval: 'scaling is CloudWatch and Application Auto Scaling',
  orb_template_id: 'use ec2_instance_type and spot',
  task_queue_service: 'queues are SQS, one per priority level',
  task_queue_config: 'use priority_levels',
  state_table_service: 'the state table is DynamoDB',
  state_table_config: 'the state table is DynamoDB',
  task_input_passed_via_external_storage: 'payloads go to S3 above inline_payload_max_bytes',
  work_proc_status_pull_interval_sec: 'the agent is told of results by lambda-rie, it does not poll',
  dynamodb_results_pull_interval_sec: 'clients read results from the session index',
  agent_use_congestion_control: 'unused in HTC-Grid too',
  enable_xray: 'no X-Ray tracing',
  metrics_are_enabled: 'metrics are CloudWatch (dashboard and alarms)',
  graceful_termination_delay: 'the drain grace is the ECS stop timeout (120 s)',
  kubernetes_version: 'a new EKS cluster runs Kubernetes 1.34, the version of the kubectl layer',
  k8s_ca_version: 'no Cluster Autoscaler: EKS Auto Mode brings and removes nodes',
  k8s_keda_version: "KEDA's Helm chart version is pinned by the stack",
  lambda_runtime: "the control-plane Lambdas' runtime: the reaper runs on Node.js 24",
  api_gateway_version: 'no API Gateway: clients use the AWS SDK with IAM',
  eks_node_volume_size: 'EKS Auto Mode sizes node volumes',
  grafana_admin_password: 'no Grafana: a CloudWatch dashboard',
  grafana_allowed_cidrs: 'no Grafana: a CloudWatch dashboard',
  allowed_access_cidr_blocks: 'nothing is exposed to the network',
  kms_deletion_window: 'encryption uses AWS-managed keys',
  kms_key_admin_roles: 'encryption uses AWS-managed keys',
};

/** HTC-Grid's keys under `agent_configuration.lambda` that are ignored here, with why. */
export const IGNORED_HTCGRID_LAMBDA_KEYS: Readonly<Record<string, string>> = {
  minCPU: 'agents are sized by the cpu and memory context keys',
  maxCPU: 'agents are sized by the cpu and memory context keys',
  minMemory: 'agents are sized by the cpu and memory context keys',
  maxMemory: 'agents are sized by the cpu and memory context keys',
  location: 'the worker zip is deployed by the stack (-c worker or -c worker_zip)',
  layer_name: 'no Lambda layers: dependencies go in the worker zip',
  region: 'the region is the top-level region key',
};
