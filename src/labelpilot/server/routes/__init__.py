"""One APIRouter per resource: auth, users, project, images, annotations, segment (the
smart tools), jobs (autolabel, training, exports), models."""
