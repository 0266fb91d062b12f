mod dag;
mod progress;
mod template;
